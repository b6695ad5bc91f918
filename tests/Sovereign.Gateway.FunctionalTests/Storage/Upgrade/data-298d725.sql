PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL);
INSERT INTO schema_migrations VALUES('controlplane-001-tables',1796404796639);
INSERT INTO schema_migrations VALUES('controlplane-002-tenant-limits',1796404796646);
INSERT INTO schema_migrations VALUES('audit-001-entries',1796404796646);
INSERT INTO schema_migrations VALUES('metering-ledger-001-usage',1796404796647);
INSERT INTO schema_migrations VALUES('metering-ledger-002-budget-periods',1796404796647);
INSERT INTO schema_migrations VALUES('metering-pricing-001-plans-prices',1796404796648);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, policy_json TEXT NOT NULL, plan TEXT NOT NULL,
    disabled INTEGER NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, limits_json TEXT NULL);
INSERT INTO tenants VALUES('th-hospital','th-hospital','{"allowed_jurisdictions":["TH"],"allowed_models":[],"allowed_licenses":[],"allowed_origins":[],"allow_external_providers":false,"retention":null}','standard',0,1796404823049,1796404856384,'{"budgets":[{"keyId":null,"period":"Month","amount":500},{"keyId":null,"period":"Day","amount":10}],"rateLimits":[{"keyId":null,"requestsPerMinute":600,"tokensPerMinute":null}],"currency":"EUR"}');
INSERT INTO tenants VALUES('us-bank','us-bank','{"allowed_jurisdictions":["TH","SG"],"allowed_models":[],"allowed_licenses":[],"allowed_origins":[],"allow_external_providers":false,"retention":null}','gold',0,1796404838762,1796404840056,'{"budgets":[{"keyId":null,"period":"Month","amount":100}],"rateLimits":[{"keyId":null,"requestsPerMinute":null,"tokensPerMinute":100000}],"currency":"USD"}');
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, policy_json TEXT NULL,
    created_at BIGINT NOT NULL, revoked_at BIGINT NULL);
INSERT INTO api_keys VALUES('key_189dd420233c19ef','th-hospital','sk-sov-KeHhZB','c16779a4d7790d5c9a42d83305fd60bb6d354c8e9fc6d5c8f2df9398f09db3ca','key',NULL,1796404824361,NULL);
INSERT INTO api_keys VALUES('key_a68825b12da39d7f','us-bank','sk-sov-1n39So','098d959d52b4d4965018c9c13a191c003eb0237a2e0aabfbe28cb2d07a906e36','key',NULL,1796404839239,1796404846017);
INSERT INTO api_keys VALUES('key_533fa41deae516f4','us-bank','sk-sov-iSusKc','ee5c5570a8b6acc00d2527e035f26911be1d7160df279537fc14709209e2ab2c','key',NULL,1796404839611,NULL);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY, jurisdiction TEXT NOT NULL, kind TEXT NOT NULL, base_url TEXT NULL,
    models_json TEXT NOT NULL, state TEXT NOT NULL, credential TEXT NOT NULL, upstream_key TEXT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
INSERT INTO nodes VALUES('local','TH','Local',NULL,'[{"id":"stories","upstream":"stories","capacity":264,"license":null,"origin":null},{"id":"all-MiniLM-L6-v2","upstream":"all-MiniLM-L6-v2","capacity":64,"license":null,"origin":null}]','Active','v1.eyJub2RlIjoibG9jYWwiLCJqdXJpc2RpY3Rpb24iOiJUSCIsImtpbmQiOiJMb2NhbCIsInVybCI6bnVsbCwiaXNzdWVkX2F0IjoxNzk2NDA0Nzk3MjM0fQ.G3gpxOe5knOlx-dPWl4uqFdcfE4kIYFX90J5NQocXjkS8y2iM9XxRKyl6ieZVlukSDnNRE3Jz95vZldJBljOvg',NULL,1796404797377,1796404797377);
INSERT INTO nodes VALUES('sg-vllm','SG','External','http://10.1.2.3:8000','[{"id":"typhoon","upstream":"typhoon","capacity":16,"license":null,"origin":null}]','Active','v1.eyJub2RlIjoic2ctdmxsbSIsImp1cmlzZGljdGlvbiI6IlNHIiwia2luZCI6IkV4dGVybmFsIiwidXJsIjoiaHR0cDovLzEwLjEuMi4zOjgwMDAiLCJpc3N1ZWRfYXQiOjE3OTY0MDQ4MzQxMDV9.ZtGms7-_G_CNUojXDPOzPSD8T0EtXHa9rA1qV8HPafi0yuzQyeOkpejQ09NR1w2V6pVtzXCYiV0Q7_mk-G6SIA',NULL,1796404834107,1796404834107);
CREATE TABLE audit_entries (
    seq BIGINT NOT NULL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    tenant TEXT NULL,
    key_id TEXT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    model TEXT NULL,
    gateway TEXT NULL,
    node TEXT NULL,
    jurisdiction TEXT NULL,
    decision TEXT NULL,
    decision_code TEXT NULL,
    reasons TEXT NOT NULL,
    prompt_tokens BIGINT NULL,
    completion_tokens BIGINT NULL,
    details TEXT NOT NULL,
    format INTEGER NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL);
INSERT INTO audit_entries VALUES(1,1796404820105,'admin',NULL,NULL,'operator','plan.update',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"currency":"EUR","plan":"standard","priority":"Interactive","weight":"1"}',1,'0000000000000000000000000000000000000000000000000000000000000000','c765ecc0b41ad6f85c86c108f9edbb42e533a24bc7b260d2b06a906638df0ca4');
INSERT INTO audit_entries VALUES(2,1796404821172,'admin',NULL,NULL,'operator','price.add',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"effective_from":"2026-12-04T17:20:21.1630000\u002B00:00","input_per_million":"0.20","model":"stories","output_per_million":"0.60","per_compute_second":"0.001","plan":"standard"}',1,'c765ecc0b41ad6f85c86c108f9edbb42e533a24bc7b260d2b06a906638df0ca4','9374584d73e374a588acaa0d007816fe28a7e08705a7fb8f802cdf278b2fd143');
INSERT INTO audit_entries VALUES(3,1796404822025,'admin',NULL,NULL,'operator','plan.update',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"currency":"USD","plan":"gold","priority":"Interactive","weight":"3"}',1,'9374584d73e374a588acaa0d007816fe28a7e08705a7fb8f802cdf278b2fd143','62d9b7e420db6070b35ffdcd03b2cc220d903e0072a6a50f4dc89fb4a1e9d569');
INSERT INTO audit_entries VALUES(4,1796404822570,'admin',NULL,NULL,'operator','price.add',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"effective_from":"2026-12-04T17:20:22.5690000\u002B00:00","input_per_million":"1","model":"stories","output_per_million":"2","per_compute_second":"","plan":"gold"}',1,'62d9b7e420db6070b35ffdcd03b2cc220d903e0072a6a50f4dc89fb4a1e9d569','45a114f28c1470f8c057a1d77fe29957fd67580dcc6b96cc9a5e4286a65acbc9');
INSERT INTO audit_entries VALUES(5,1796404823050,'admin','th-hospital',NULL,'operator','tenant.create',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"plan":"standard","policy":"{\u0022allowed_jurisdictions\u0022:[\u0022TH\u0022],\u0022allowed_models\u0022:[],\u0022allowed_licenses\u0022:[],\u0022allowed_origins\u0022:[],\u0022allow_external_providers\u0022:false,\u0022retention\u0022:null}"}',1,'45a114f28c1470f8c057a1d77fe29957fd67580dcc6b96cc9a5e4286a65acbc9','ad4465ccb5d3cafd734e9a0ab90feaf13287cb3447d5332d1b60be5178fc2cde');
INSERT INTO audit_entries VALUES(6,1796404824363,'admin','th-hospital','key_189dd420233c19ef','operator','key.create',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"key_id":"key_189dd420233c19ef","policy":""}',1,'ad4465ccb5d3cafd734e9a0ab90feaf13287cb3447d5332d1b60be5178fc2cde','84deaa081a42664ba7225fad52d87085e821c24ff8604c0cc9d1d51007c7de5a');
INSERT INTO audit_entries VALUES(7,1796404826502,'admin','th-hospital',NULL,'operator','limits.update',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"limits":"{\u0022currency\u0022:\u0022EUR\u0022,\u0022budgets\u0022:[{\u0022key_id\u0022:null,\u0022period\u0022:\u0022month\u0022,\u0022amount\u0022:500},{\u0022key_id\u0022:null,\u0022period\u0022:\u0022day\u0022,\u0022amount\u0022:10}],\u0022rate_limits\u0022:[{\u0022key_id\u0022:null,\u0022requests_per_minute\u0022:600,\u0022tokens_per_minute\u0022:null}]}"}',1,'84deaa081a42664ba7225fad52d87085e821c24ff8604c0cc9d1d51007c7de5a','750f7e0dc68f35517009d38391a6ed6e202b0657d6ab2c491d3169eaa4ef4805');
INSERT INTO audit_entries VALUES(8,1796404828271,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_54b18861474ae37ce9147f7e"}',1,'750f7e0dc68f35517009d38391a6ed6e202b0657d6ab2c491d3169eaa4ef4805','a03027a5d9aa2079a938e7289737bb728dd4834ae190c9250f2e1387242de2a2');
INSERT INTO audit_entries VALUES(9,1796404829812,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.completed','stories','local','local','TH','allowed',NULL,'[]',46,8,'{"language":"und","outcome":"completed","request_id":"req_54b18861474ae37ce9147f7e"}',1,'a03027a5d9aa2079a938e7289737bb728dd4834ae190c9250f2e1387242de2a2','45704eeb1edc2dafee75d2d153cf7ab2da16d235472006be9417b9fcd6e03231');
INSERT INTO audit_entries VALUES(10,1796404831471,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_61c3586fdfbd1e1b6bcbca5d"}',1,'45704eeb1edc2dafee75d2d153cf7ab2da16d235472006be9417b9fcd6e03231','939127ec13697910210c6e67f5e7a1ad9d009fe5b0903bad5395023f118931d8');
INSERT INTO audit_entries VALUES(11,1796404831519,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.completed','stories','local','local','TH','allowed',NULL,'[]',46,8,'{"language":"und","outcome":"completed","request_id":"req_61c3586fdfbd1e1b6bcbca5d"}',1,'939127ec13697910210c6e67f5e7a1ad9d009fe5b0903bad5395023f118931d8','639d9e80864d2f30087c91515ac2710578b1f27ef17b17fd8195607ef953ff91');
INSERT INTO audit_entries VALUES(12,1796404832774,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_cbf828f6c29447a5bdd10cfd"}',1,'639d9e80864d2f30087c91515ac2710578b1f27ef17b17fd8195607ef953ff91','6cdaae0612da7c3aac9a7b7ac259c40e5fae6cdba72d344690f42353a5e10889');
INSERT INTO audit_entries VALUES(13,1796404832788,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.completed','stories','local','local','TH','allowed',NULL,'[]',46,8,'{"language":"und","outcome":"completed","request_id":"req_cbf828f6c29447a5bdd10cfd"}',1,'6cdaae0612da7c3aac9a7b7ac259c40e5fae6cdba72d344690f42353a5e10889','f39744599ec3da6eb017d8a87d924a83df9fb6a0d74bff3e42121549adf650b9');
INSERT INTO audit_entries VALUES(14,1796404834126,'admin',NULL,NULL,'operator','node.register',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"jurisdiction":"SG","models":"typhoon","node":"sg-vllm","url":"http://10.1.2.3:8000"}',1,'f39744599ec3da6eb017d8a87d924a83df9fb6a0d74bff3e42121549adf650b9','98492d91223d516d7344ade48556c2b94dd70108ee2097ca362060918b98d89a');
INSERT INTO audit_entries VALUES(15,1796404838763,'admin','us-bank',NULL,'operator','tenant.create',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"plan":"gold","policy":"{\u0022allowed_jurisdictions\u0022:[\u0022TH\u0022,\u0022SG\u0022],\u0022allowed_models\u0022:[],\u0022allowed_licenses\u0022:[],\u0022allowed_origins\u0022:[],\u0022allow_external_providers\u0022:false,\u0022retention\u0022:null}"}',1,'98492d91223d516d7344ade48556c2b94dd70108ee2097ca362060918b98d89a','7c3384ca8246fcd7c8331f8f624b1925980fefd58bfd24e813f8ed9578c4e4f3');
INSERT INTO audit_entries VALUES(16,1796404839239,'admin','us-bank','key_a68825b12da39d7f','operator','key.create',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"key_id":"key_a68825b12da39d7f","policy":""}',1,'7c3384ca8246fcd7c8331f8f624b1925980fefd58bfd24e813f8ed9578c4e4f3','80d2f0590b308e33f295f1ed8f84888e8954d98052dfb8b8a12c504197114893');
INSERT INTO audit_entries VALUES(17,1796404839612,'admin','us-bank','key_533fa41deae516f4','operator','key.create',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"key_id":"key_533fa41deae516f4","policy":""}',1,'80d2f0590b308e33f295f1ed8f84888e8954d98052dfb8b8a12c504197114893','27ca19abfa16a3aa698e4b62db9f4a53d32cb6dea8e9a68983b4b48f0afc60b6');
INSERT INTO audit_entries VALUES(18,1796404840057,'admin','us-bank',NULL,'operator','limits.update',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"limits":"{\u0022currency\u0022:\u0022USD\u0022,\u0022budgets\u0022:[{\u0022key_id\u0022:null,\u0022period\u0022:\u0022month\u0022,\u0022amount\u0022:100}],\u0022rate_limits\u0022:[{\u0022key_id\u0022:null,\u0022requests_per_minute\u0022:null,\u0022tokens_per_minute\u0022:100000}]}"}',1,'27ca19abfa16a3aa698e4b62db9f4a53d32cb6dea8e9a68983b4b48f0afc60b6','0d6f8917aa13e5640074d3506244f270149286258d291784fe6d3416e9fa0df4');
INSERT INTO audit_entries VALUES(19,1796404840800,'inference','us-bank','key_a68825b12da39d7f','key_a68825b12da39d7f','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_135fe673dedff2a791d03f93"}',1,'0d6f8917aa13e5640074d3506244f270149286258d291784fe6d3416e9fa0df4','6aa66e67bcd8646882cb79db41837a3054fb2b68a99f9c6adceb6d0759422af0');
INSERT INTO audit_entries VALUES(20,1796404840835,'inference','us-bank','key_a68825b12da39d7f','key_a68825b12da39d7f','inference.completed','stories','local','local','TH','allowed',NULL,'[]',44,5,'{"language":"und","outcome":"completed","request_id":"req_135fe673dedff2a791d03f93"}',1,'6aa66e67bcd8646882cb79db41837a3054fb2b68a99f9c6adceb6d0759422af0','6d676523696c7f5affe760c968c41db42b564b4f37f1ba8710c20aba652c41dc');
INSERT INTO audit_entries VALUES(21,1796404841550,'inference','us-bank','key_a68825b12da39d7f','key_a68825b12da39d7f','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_6955e64d3569f7f3956161dc"}',1,'6d676523696c7f5affe760c968c41db42b564b4f37f1ba8710c20aba652c41dc','5b21290aa0764aba10a5837cb66a62b172d2a99b505982a402658f3c27e701c5');
INSERT INTO audit_entries VALUES(22,1796404841563,'inference','us-bank','key_a68825b12da39d7f','key_a68825b12da39d7f','inference.completed','stories','local','local','TH','allowed',NULL,'[]',44,5,'{"language":"und","outcome":"completed","request_id":"req_6955e64d3569f7f3956161dc"}',1,'5b21290aa0764aba10a5837cb66a62b172d2a99b505982a402658f3c27e701c5','6ffd802a12455d4db01667704c513f89ba75b7845347627cbb30f4d6369179d4');
INSERT INTO audit_entries VALUES(23,1796404842818,'inference','us-bank','key_a68825b12da39d7f','key_a68825b12da39d7f','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_107799bf93085afb26e6aaab"}',1,'6ffd802a12455d4db01667704c513f89ba75b7845347627cbb30f4d6369179d4','a928ac47db2c852562451193ac12e4fff288535b89e9594f4af5a381f7d9b43f');
INSERT INTO audit_entries VALUES(24,1796404842839,'inference','us-bank','key_a68825b12da39d7f','key_a68825b12da39d7f','inference.completed','stories','local','local','TH','allowed',NULL,'[]',44,5,'{"language":"und","outcome":"completed","request_id":"req_107799bf93085afb26e6aaab"}',1,'a928ac47db2c852562451193ac12e4fff288535b89e9594f4af5a381f7d9b43f','339f75c501214d053eeb762122f0257de00f2adfa1508e0dade73df20d1cb311');
INSERT INTO audit_entries VALUES(25,1796404846023,'admin','us-bank','key_a68825b12da39d7f','operator','key.revoke',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"key_id":"key_a68825b12da39d7f"}',1,'339f75c501214d053eeb762122f0257de00f2adfa1508e0dade73df20d1cb311','c0999058882f13b5fb81653b3fcf0919fcac6da69ea16590640e2583a789aea0');
INSERT INTO audit_entries VALUES(26,1796404846789,'inference','us-bank','key_533fa41deae516f4','key_533fa41deae516f4','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_23cf2087c52f1efdba40ee11"}',1,'c0999058882f13b5fb81653b3fcf0919fcac6da69ea16590640e2583a789aea0','38e2513cc822931c88e57d97133a3acf44d32224a43dff1640e4b2254e05a7f7');
INSERT INTO audit_entries VALUES(27,1796404846814,'inference','us-bank','key_533fa41deae516f4','key_533fa41deae516f4','inference.completed','stories','local','local','TH','allowed',NULL,'[]',41,3,'{"language":"und","outcome":"completed","request_id":"req_23cf2087c52f1efdba40ee11"}',1,'38e2513cc822931c88e57d97133a3acf44d32224a43dff1640e4b2254e05a7f7','ee3e0ef447b2b6a09e964a6afa72d04838f622ace77a936571131c0d3734d144');
INSERT INTO audit_entries VALUES(28,1796404854756,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.refused','typhoon','local',NULL,'TH','refused','residency_violation','["replica_excluded:sg-vllm:jurisdiction SG not allowed","replica_excluded:sg-vllm:external providers not allowed","no_compliant_replica: none of 1 replicas of typhoon satisfies the policy"]',NULL,NULL,'{"request_id":"req_a550056f6c849162605c17ce"}',1,'ee3e0ef447b2b6a09e964a6afa72d04838f622ace77a936571131c0d3734d144','7be05c8197a7c734fb415b2ebc9381b44cc0fb1c408ee511763080b3c3aa47dd');
INSERT INTO audit_entries VALUES(29,1796404855245,'admin','th-hospital',NULL,'operator','limits.update',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"limits":"{\u0022currency\u0022:\u0022EUR\u0022,\u0022budgets\u0022:[{\u0022key_id\u0022:null,\u0022period\u0022:\u0022month\u0022,\u0022amount\u0022:0.0000001}],\u0022rate_limits\u0022:[]}"}',1,'7be05c8197a7c734fb415b2ebc9381b44cc0fb1c408ee511763080b3c3aa47dd','ad92216d7c26c993c5d9ee2e0a1fde349fc948bf0f36ec5e168a38fb3527429d');
INSERT INTO audit_entries VALUES(30,1796404855830,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.allowed','stories','local','local','TH','allowed',NULL,'["selected:local:least loaded (0/264) of 1 compliant with capacity"]',NULL,NULL,'{"gateway_jurisdiction":"TH","request_id":"req_0f51624bf9df67aa9fb6324f"}',1,'ad92216d7c26c993c5d9ee2e0a1fde349fc948bf0f36ec5e168a38fb3527429d','d3a38d15f8ff0ae08a3e77867fda55e91a3480e208920465234744944604e84d');
INSERT INTO audit_entries VALUES(31,1796404855838,'inference','th-hospital','key_189dd420233c19ef','key_189dd420233c19ef','inference.completed','stories','local','local','TH','allowed',NULL,'[]',0,0,'{"language":"und","outcome":"rejected","request_id":"req_0f51624bf9df67aa9fb6324f"}',1,'d3a38d15f8ff0ae08a3e77867fda55e91a3480e208920465234744944604e84d','7415c4a6dda855ee027930b2c8fe89bd19cb16d941f8842339c83a53a6e5ac60');
INSERT INTO audit_entries VALUES(32,1796404856385,'admin','th-hospital',NULL,'operator','limits.update',NULL,NULL,NULL,NULL,NULL,NULL,'[]',NULL,NULL,'{"limits":"{\u0022currency\u0022:\u0022EUR\u0022,\u0022budgets\u0022:[{\u0022key_id\u0022:null,\u0022period\u0022:\u0022month\u0022,\u0022amount\u0022:500},{\u0022key_id\u0022:null,\u0022period\u0022:\u0022day\u0022,\u0022amount\u0022:10}],\u0022rate_limits\u0022:[{\u0022key_id\u0022:null,\u0022requests_per_minute\u0022:600,\u0022tokens_per_minute\u0022:null}]}"}',1,'7415c4a6dda855ee027930b2c8fe89bd19cb16d941f8842339c83a53a6e5ac60','9f864d1c94bbe5f8d371d86143448f62fe5ee5a8e24146e524d11f3eebf23d7e');
CREATE TABLE audit_head (id INTEGER NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, updated_at BIGINT NOT NULL);
INSERT INTO audit_head VALUES(1,32,'9f864d1c94bbe5f8d371d86143448f62fe5ee5a8e24146e524d11f3eebf23d7e',1796404856385);
CREATE TABLE audit_checkpoints (
    seq BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (seq, key_id));
INSERT INTO audit_checkpoints VALUES(32,'04503482107c268f','9f864d1c94bbe5f8d371d86143448f62fe5ee5a8e24146e524d11f3eebf23d7e',1796404864567,'78e745deb3ed3b8d1c98f979dc4a2ef15020fdb65734aa0364e48d328dcc1c61aea8aa192eccca58eb73a8f6d6becace25950cac34259741bab865234cdebf01');
CREATE TABLE metering_usage (
    request_id TEXT NOT NULL PRIMARY KEY,
    ts BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    node TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    language TEXT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    queue_ms BIGINT NOT NULL,
    ttft_ms BIGINT NULL,
    duration_ms BIGINT NOT NULL,
    compute_us BIGINT NOT NULL,
    outcome INTEGER NOT NULL,
    refusal_code TEXT NULL,
    cost_micros BIGINT NOT NULL,
    currency TEXT NOT NULL,
    price_version TEXT NULL
);
INSERT INTO metering_usage VALUES('req_54b18861474ae37ce9147f7e',1796404828238,'th-hospital','key_189dd420233c19ef','stories','local','TH','und',46,8,0,13,63,93,32205,0,NULL,46,'EUR','standard:stories@2026-12-04T17:20:21.163Z');
INSERT INTO metering_usage VALUES('req_61c3586fdfbd1e1b6bcbca5d',1796404831469,'th-hospital','key_189dd420233c19ef','stories','local','TH','und',46,8,0,0,18,40,39338,0,NULL,53,'EUR','standard:stories@2026-12-04T17:20:21.163Z');
INSERT INTO metering_usage VALUES('req_cbf828f6c29447a5bdd10cfd',1796404832773,'th-hospital','key_189dd420233c19ef','stories','local','TH','und',46,8,0,0,7,11,10963,0,NULL,25,'EUR','standard:stories@2026-12-04T17:20:21.163Z');
INSERT INTO metering_usage VALUES('req_135fe673dedff2a791d03f93',1796404840799,'us-bank','key_a68825b12da39d7f','stories','local','TH','und',44,5,0,0,7,9,8716,0,NULL,54,'USD','gold:stories@2026-12-04T17:20:22.569Z');
INSERT INTO metering_usage VALUES('req_6955e64d3569f7f3956161dc',1796404841549,'us-bank','key_a68825b12da39d7f','stories','local','TH','und',44,5,0,0,4,11,10428,0,NULL,54,'USD','gold:stories@2026-12-04T17:20:22.569Z');
INSERT INTO metering_usage VALUES('req_107799bf93085afb26e6aaab',1796404842817,'us-bank','key_a68825b12da39d7f','stories','local','TH','und',44,5,0,0,14,19,15832,0,NULL,54,'USD','gold:stories@2026-12-04T17:20:22.569Z');
INSERT INTO metering_usage VALUES('req_23cf2087c52f1efdba40ee11',1796404846788,'us-bank','key_533fa41deae516f4','stories','local','TH','und',41,3,0,0,14,23,22974,0,NULL,47,'USD','gold:stories@2026-12-04T17:20:22.569Z');
INSERT INTO metering_usage VALUES('req_a550056f6c849162605c17ce',1796404854770,'th-hospital','key_189dd420233c19ef','typhoon','-','TH',NULL,0,0,0,0,NULL,0,0,1,'residency_violation',0,'EUR',NULL);
INSERT INTO metering_usage VALUES('req_0f51624bf9df67aa9fb6324f',1796404855829,'th-hospital','key_189dd420233c19ef','stories','local','TH',NULL,0,0,0,0,NULL,0,0,1,'budget_exceeded',0,'EUR',NULL);
CREATE TABLE metering_usage_daily (
    tenant TEXT NOT NULL,
    day_start BIGINT NOT NULL,
    model TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    currency TEXT NOT NULL,
    requests BIGINT NOT NULL,
    completed BIGINT NOT NULL,
    refused BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    compute_us BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (tenant, day_start, model, jurisdiction, currency)
);
INSERT INTO metering_usage_daily VALUES('th-hospital',1796342400000,'stories','TH','EUR',4,3,1,0,0,138,24,0,82506,124);
INSERT INTO metering_usage_daily VALUES('us-bank',1796342400000,'stories','TH','USD',4,4,0,0,0,173,18,0,57950,209);
INSERT INTO metering_usage_daily VALUES('th-hospital',1796342400000,'typhoon','TH','EUR',1,0,1,0,0,0,0,0,0,0);
CREATE TABLE metering_tenant_periods (
    tenant TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    currency TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    compute_us BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (tenant, period, period_start, currency)
);
INSERT INTO metering_tenant_periods VALUES('th-hospital','day',1796342400000,'EUR',5,138,24,82506,124);
INSERT INTO metering_tenant_periods VALUES('th-hospital','month',1796083200000,'EUR',5,138,24,82506,124);
INSERT INTO metering_tenant_periods VALUES('th-hospital','total',0,'EUR',5,138,24,82506,124);
INSERT INTO metering_tenant_periods VALUES('us-bank','day',1796342400000,'USD',4,173,18,57950,209);
INSERT INTO metering_tenant_periods VALUES('us-bank','month',1796083200000,'USD',4,173,18,57950,209);
INSERT INTO metering_tenant_periods VALUES('us-bank','total',0,'USD',4,173,18,57950,209);
CREATE TABLE metering_ledger_state (state_key TEXT NOT NULL PRIMARY KEY, state_value BIGINT NOT NULL);
INSERT INTO metering_ledger_state VALUES('purged_before_ms',1788628797262);
CREATE TABLE metering_key_periods (
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    currency TEXT NOT NULL,
    requests BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    PRIMARY KEY (tenant, key_id, period, period_start, currency)
);
INSERT INTO metering_key_periods VALUES('th-hospital','key_189dd420233c19ef','day',1796342400000,'EUR',5,124);
INSERT INTO metering_key_periods VALUES('th-hospital','key_189dd420233c19ef','total',0,'EUR',5,124);
INSERT INTO metering_key_periods VALUES('us-bank','key_a68825b12da39d7f','day',1796342400000,'USD',3,162);
INSERT INTO metering_key_periods VALUES('us-bank','key_a68825b12da39d7f','total',0,'USD',3,162);
INSERT INTO metering_key_periods VALUES('us-bank','key_533fa41deae516f4','day',1796342400000,'USD',1,47);
INSERT INTO metering_key_periods VALUES('us-bank','key_533fa41deae516f4','total',0,'USD',1,47);
CREATE TABLE metering_plans (
    name TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL,
    currency TEXT NOT NULL,
    weight INTEGER NOT NULL,
    priority TEXT NOT NULL
);
INSERT INTO metering_plans VALUES('standard',0,'EUR',1,'Interactive');
INSERT INTO metering_plans VALUES('gold',1,'USD',3,'Interactive');
CREATE TABLE metering_prices (
    plan_name TEXT NOT NULL,
    model TEXT NOT NULL,
    effective_from BIGINT NOT NULL,
    input_per_million TEXT NULL,
    output_per_million TEXT NULL,
    per_compute_second TEXT NULL,
    PRIMARY KEY (plan_name, model, effective_from)
);
INSERT INTO metering_prices VALUES('standard','stories',1796404821163,'0.20','0.60','0.001');
INSERT INTO metering_prices VALUES('gold','stories',1796404822569,'1','2',NULL);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
CREATE INDEX audit_entries_tenant_at ON audit_entries (tenant, at_ms);
CREATE INDEX audit_entries_at ON audit_entries (at_ms);
CREATE INDEX metering_usage_ts ON metering_usage (ts);
CREATE INDEX metering_usage_daily_day ON metering_usage_daily (day_start);
COMMIT;
