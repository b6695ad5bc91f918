// The official OpenAI JavaScript SDK against a running Sovereign server, as a tenant developer uses it: each check
// calls the SDK the way its README does and asserts what the client sees. Run by OfficialNodeSdkTests:
//   SOVEREIGN_BASE_URL=http://127.0.0.1:PORT SOVEREIGN_KEY=sk-... SOVEREIGN_CHAT_MODEL=stories \
//   SOVEREIGN_EMBEDDING_MODEL=all-MiniLM-L6-v2 SOVEREIGN_JURISDICTION=TH node checks.mjs
// Prints one line per check and exits 1 if any failed.
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
};

const baseURL = `${env('SOVEREIGN_BASE_URL')}/v1`;
const chatModel = env('SOVEREIGN_CHAT_MODEL');
const embeddingModel = env('SOVEREIGN_EMBEDDING_MODEL');
const jurisdiction = env('SOVEREIGN_JURISDICTION');
// No retries: a 5xx the SDK would retry must show here as the failure it is.
const client = new OpenAI({ baseURL, apiKey: env('SOVEREIGN_KEY'), maxRetries: 0, timeout: 120_000 });

const checks = [];
const check = (name, run) => checks.push({ name, run });

check('models.list pages the served models', async () => {
  const ids = [];
  for await (const model of client.models.list()) {
    ids.push(model.id);
    assert.equal(model.object, 'model');
  }
  assert.ok(ids.includes(chatModel), `models: ${ids.join(', ')}`);
  assert.ok(ids.includes(embeddingModel), `models: ${ids.join(', ')}`);
});

check('models.retrieve', async () => {
  const model = await client.models.retrieve(chatModel);
  assert.equal(model.id, chatModel);
});

check('chat.completions.create with the response headers', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: chatModel, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8, temperature: 0 })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(typeof data.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(data.choices[0].finish_reason), data.choices[0].finish_reason);
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.total_tokens === data.usage.prompt_tokens + data.usage.completion_tokens, JSON.stringify(data.usage));
  assert.equal(response.headers.get('x-sovereign-jurisdiction'), jurisdiction);
  assert.ok(response.headers.get('x-request-id'), 'x-request-id');
});

check('chat.completions.create with n = 2 and a system message', async () => {
  const data = await client.chat.completions.create({
    model: chatModel,
    messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'A cat' }],
    n: 2,
    max_tokens: 4,
  });
  assert.deepEqual(data.choices.map((c) => c.index), [0, 1]);
  assert.ok(data.usage.completion_tokens >= 2, JSON.stringify(data.usage));
});

check('chat.completions stream with include_usage', async () => {
  const stream = await client.chat.completions.create({
    model: chatModel,
    messages: [{ role: 'user', content: 'Once upon a time' }],
    max_tokens: 8,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) {
      usage = chunk.usage;
      assert.equal(chunk.choices.length, 0, 'the usage chunk has no choices');
    }
    for (const choice of chunk.choices) {
      text += choice.delta?.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.ok(text.length > 0, 'no text streamed');
  assert.ok(['stop', 'length'].includes(finish), String(finish));
  assert.ok(usage && usage.completion_tokens > 0, JSON.stringify(usage));
});

check('chat.completions stream helper (finalChatCompletion)', async () => {
  const runner = client.chat.completions.stream({ model: chatModel, messages: [{ role: 'user', content: 'A dog' }], max_tokens: 6 });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.role, 'assistant');
  assert.equal(typeof final.choices[0].message.content, 'string');
});

check('chat.completions stream aborted by the client', async () => {
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model: chatModel, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 64, stream: true },
    { signal: controller.signal },
  );
  // The SDK ends the iteration quietly once its signal aborts (it swallows its own AbortError).
  let chunks = 0;
  for await (const _ of stream) {
    if (++chunks === 2) controller.abort();
  }
  assert.equal(chunks, 2, 'chunks after the abort');
  assert.ok(stream.controller.signal.aborted);
  // The server is still serving afterwards.
  const after = await client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  assert.equal(after.choices.length, 1);
});

check('chat.completions.create with a json_schema response_format answers that JSON', async () => {
  const data = await client.chat.completions.create({
    model: chatModel,
    messages: [{ role: 'user', content: 'Is it raining?' }],
    max_tokens: 40,
    response_format: {
      type: 'json_schema',
      json_schema: { name: 'answer', strict: true, schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false } },
    },
  });
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.equal(typeof JSON.parse(data.choices[0].message.content).ok, 'boolean');
});

const timeTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string', enum: ['UTC', 'CET'] } }, required: ['tz'], additionalProperties: false } } };

check('tool_choice required with stop strings: the stream helper assembles a call whose arguments parse', async () => {
  // Stop strings end text; the forced call has none (they cut it, and its markup came back as content).
  const runner = client.chat.completions.stream({
    model: chatModel, messages: [{ role: 'user', content: 'What time is it?' }], tools: [timeTool], tool_choice: 'required', stop: ['"', 'tz'], max_tokens: 160,
  });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.ok(!final.choices[0].message.content, final.choices[0].message.content); // '' from the role chunk, no markup
  const [call] = final.choices[0].message.tool_calls;
  assert.ok(['UTC', 'CET'].includes(JSON.parse(call.function.arguments).tz), call.function.arguments);
});

check('a tool result sent twice is BadRequestError naming the second', async () => {
  const call = { id: 'call_1', type: 'function', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } };
  await assert.rejects(
    client.chat.completions.create({
      model: chatModel, tools: [timeTool], max_tokens: 2,
      messages: [{ role: 'user', content: 'Time?' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_1', content: 'timeout' }, { role: 'tool', tool_call_id: 'call_1', content: '12:00' }],
    }),
    (error) => error instanceof OpenAI.BadRequestError && error.param === 'messages[3].tool_call_id',
  );
});

check('completions.create (legacy), with logprobs', async () => {
  const data = await client.completions.create({ model: chatModel, prompt: 'Once upon a time', max_tokens: 4, logprobs: 2, temperature: 0 });
  assert.equal(data.object, 'text_completion');
  assert.equal(typeof data.choices[0].text, 'string');
  assert.equal(data.choices[0].logprobs.tokens.length, data.usage.completion_tokens);
  assert.ok(data.choices[0].logprobs.top_logprobs.every((top) => Object.keys(top).length <= 2));
});

check('embeddings.create (the SDK asks for base64 and decodes it)', async () => {
  const data = await client.embeddings.create({ model: embeddingModel, input: ['a cat', 'a dog'] });
  assert.equal(data.data.length, 2);
  assert.equal(data.data[0].embedding.length, 384);
  assert.ok(data.data[0].embedding.every(Number.isFinite));
  const norm = Math.sqrt(data.data[0].embedding.reduce((sum, x) => sum + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
  assert.ok(data.usage.prompt_tokens > 0);
});

check('embeddings.create with float encoding', async () => {
  const data = await client.embeddings.create({ model: embeddingModel, input: 'a cat', encoding_format: 'float' });
  assert.equal(data.data[0].embedding.length, 384);
});

check('responses.create and output_text', async () => {
  const response = await client.responses.create({ model: chatModel, input: 'Once upon a time', max_output_tokens: 16 });
  assert.equal(response.object, 'response');
  assert.equal(response.status === 'completed' || response.status === 'incomplete', true, response.status);
  assert.equal(typeof response.output_text, 'string');
  assert.ok(response.usage.output_tokens > 0, JSON.stringify(response.usage));
});

check('responses.create stream: created, deltas, completed', async () => {
  const stream = await client.responses.create({ model: chatModel, input: 'A dog', max_output_tokens: 16, stream: true });
  const types = [];
  let text = '';
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'response.output_text.delta') text += event.delta;
  }
  assert.equal(types[0], 'response.created');
  assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)), types.join(','));
  assert.ok(text.length > 0);
});

check('an unknown model is NotFoundError (404, model_not_found), not retried', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    (error) => error instanceof OpenAI.NotFoundError && error.status === 404 && error.code === 'model_not_found' && error.param === 'model',
  );
});

check('a bad parameter is BadRequestError naming it', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'hi' }], max_tokens: -1 }),
    (error) => error instanceof OpenAI.BadRequestError && error.status === 400 && error.param === 'max_tokens',
  );
});

check('a prompt over the context window is BadRequestError context_length_exceeded, in the words apps match', async () => {
  // Apps trim the history and retry on a context overflow; many tell it by OpenAI's wording in error.message,
  // which in this SDK is the server's message alone (the code is only in error.code).
  const long = 'once upon a time there was a dog '.repeat(400);
  await assert.rejects(
    client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: long }], max_tokens: 4 }),
    (error) => error instanceof OpenAI.BadRequestError && error.code === 'context_length_exceeded' && error.param === 'messages'
      && /maximum context length is 1024 tokens/.test(error.message),
  );
});

check('a wrong key is AuthenticationError (401)', async () => {
  const stranger = new OpenAI({ baseURL, apiKey: 'sk-not-a-key', maxRetries: 0 });
  await assert.rejects(
    stranger.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'hi' }] }),
    (error) => error instanceof OpenAI.AuthenticationError && error.status === 401 && typeof error.message === 'string',
  );
});

let failed = 0;
for (const { name, run } of checks) {
  try {
    await run();
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error?.stack ?? error}`);
  }
}

console.log(`${checks.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
