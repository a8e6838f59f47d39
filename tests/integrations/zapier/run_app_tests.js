'use strict';
// Drives the generated Zapier app through zapier-platform-core's own handler (what appTester
// wraps), against a live bridge. Zapier's side of REST hooks and callbacks is played here by
// receivers on 127.0.0.1. Prints one JSON line per step: {step, ok, detail}.
// Usage: node run_app_tests.js '<json config>' (bridge, token, sim, agent, datastore, expectAgents)
const http = require('http');
const path = require('path');

const appDir = path.resolve(__dirname, '../../../integrations/zapier');
const App = require(appDir);
const createLambdaHandler = require(path.join(appDir, 'node_modules/zapier-platform-core/src/tools/create-lambda-handler'));
const { validateApp } = require(path.join(appDir, 'node_modules/zapier-platform-core/src/tools/schema'));

const config = JSON.parse(process.argv[2]);
const authData = { base_url: config.bridge, token: config.token };
const handler = createLambdaHandler(App);

// appTester's own event, with the callback URL ours instead of Zapier's staging echo server.
const run = async (method, bundle, callbackUrl) => {
  const event = { command: 'execute', method, bundle: { authData, ...bundle }, callback_url: callbackUrl };
  const response = await handler(event);
  return response.results;
};

const errorOf = async (promise) => {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
};

// A receiver standing in for Zapier's hook and callback URLs: records each POST as it came.
const receiver = () =>
  new Promise((resolve) => {
    const received = [];
    const waiters = [];
    const server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, content: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"status":"success"}');
        waiters.splice(0).forEach((w) => w());
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const next = (timeoutMs = 20000) =>
        new Promise((ok, fail) => {
          const check = () => (received.length ? ok(received.shift()) : null);
          if (check() !== null) return;
          const timer = setTimeout(() => fail(new Error('nothing arrived')), timeoutMs);
          waiters.push(() => {
            clearTimeout(timer);
            check();
          });
        });
      resolve({ url: `http://127.0.0.1:${server.address().port}/hook`, next, close: () => server.close() });
    });
  });

const sim = async (method, route, body) => {
  const response = await fetch(`${config.sim}/__admin${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`simulator ${route}: ${response.status}`);
  return response.status === 204 ? null : response.json();
};

const steps = [];
const step = async (name, fn) => {
  try {
    const detail = await fn();
    steps.push({ step: name, ok: true, detail: detail === undefined ? null : detail });
  } catch (error) {
    steps.push({ step: name, ok: false, detail: `${error.name}: ${error.message}` });
  }
  console.log(JSON.stringify(steps[steps.length - 1]));
};

const assert = (condition, message) => {
  if (!condition) throw new Error(message);
};

const main = async () => {
  await step('validate', () => {
    const problems = validateApp(App);
    assert(problems.length === 0, JSON.stringify(problems).slice(0, 500));
    return problems.length;
  });

  await step('auth_test_and_label', async () => {
    const me = await run('authentication.test', {});
    assert(me.id && me.organization, 'no connection in the test answer');
    const label = await run('authentication.connectionLabel', { inputData: me });
    assert(label === `Live (${me.organization.name})`, `label ${label}`);
    return label;
  });

  await step('auth_rejects_a_bad_token', async () => {
    const error = await errorOf(
      handler({ command: 'execute', method: 'authentication.test', bundle: { authData: { ...authData, token: 'zwb_' + 'A'.repeat(43) } } }),
    );
    assert(error.name === 'ExpiredAuthError', `${error.name}: ${error.message}`);
    return error.message;
  });

  await step('polling_trigger', async () => {
    const items = await run('triggers.new_conversation.operation.perform', { inputData: { agent_id: config.agent } });
    assert(Array.isArray(items) && items.length >= 3, `got ${JSON.stringify(items).slice(0, 200)}`);
    assert(items.every((item) => item.id && item.agent_id === config.agent), 'items without id or agent');
    const sample = await run('triggers.new_conversation.operation.perform', {
      inputData: { agent_id: config.agent },
      meta: { isLoadingSample: true },
    });
    assert(sample.length >= 1 && sample.length <= 3, `sample of ${sample.length}`);
    return items.length;
  });

  await step('dropdown_pages', async () => {
    const first = await run('triggers.list_agents.operation.perform', { meta: { page: 0 } });
    const second = await run('triggers.list_agents.operation.perform', { meta: { page: 1 } });
    assert(first.length === 100, `first page has ${first.length}`);
    assert(first.length + second.length === config.expectAgents, `${first.length} + ${second.length}`);
    const ids = new Set(first.map((a) => a.id));
    assert(second.every((a) => !ids.has(a.id) && a.name), 'the second page repeats the first');
    const stores = await run('triggers.list_datastores.operation.perform', { meta: { page: 0 } });
    assert(stores.some((d) => d.id === config.datastore), 'datastore missing');
    return { first: first.length, second: second.length };
  });

  const hook = await receiver();
  let subscribeData = null;
  await step('hook_subscribe', async () => {
    subscribeData = await run('triggers.new_conversation_instant.operation.performSubscribe', {
      targetUrl: hook.url,
      inputData: { agent_id: config.agent },
    });
    assert(subscribeData.id && subscribeData.secret && subscribeData.secret.startsWith('whsec_'), JSON.stringify(subscribeData));
    return subscribeData.id;
  });

  await step('hook_perform_list', async () => {
    const items = await run('triggers.new_conversation_instant.operation.performList', { inputData: { agent_id: config.agent } });
    assert(items.length >= 1 && items.length <= 3 && items[0].id, JSON.stringify(items).slice(0, 200));
    return items.length;
  });

  await step('hook_delivery_verified', async () => {
    const created = await sim('POST', '/conversations', {
      agent_id: config.agent,
      messages: [{ from: 'human', text: 'Is this instant?' }, { from: 'agent', text: 'Yes.' }],
    });
    const delivery = await hook.next();
    const bundle = {
      inputData: { agent_id: config.agent },
      subscribeData,
      rawRequest: { headers: delivery.headers, content: delivery.content },
      cleanedRequest: JSON.parse(delivery.content),
    };
    const items = await run('triggers.new_conversation_instant.operation.perform', bundle);
    assert(items.length === 1 && items[0].id === created.id, `${JSON.stringify(items)} vs ${created.id}`);
    const forged = { ...bundle, rawRequest: { ...bundle.rawRequest, content: delivery.content.replace('Is this', 'Was this') } };
    const error = await errorOf(run('triggers.new_conversation_instant.operation.perform', forged));
    assert(error.name === 'HaltedError', `a forged delivery gave ${error.name}`);
    return { id: items[0].id, webhook_id: delivery.headers['webhook-id'] };
  });

  await step('hook_unsubscribe', async () => {
    await run('triggers.new_conversation_instant.operation.performUnsubscribe', { subscribeData });
    const response = await fetch(`${config.bridge}/v1/hooks/${subscribeData.id}`, { headers: { Authorization: `Bearer ${config.token}` } });
    assert(response.status === 404, `the hook still answers ${response.status}`);
    await run('triggers.new_conversation_instant.operation.performUnsubscribe', { subscribeData });
    return response.status;
  });
  hook.close();

  let upserted = null;
  await step('create_upsert_document', async () => {
    upserted = await run('creates.upsert_document.operation.perform', {
      inputData: {
        datastore_id: config.datastore,
        document__id: 'zap-doc-1',
        document__text: 'Gift cards never expire.',
        document__title: 'Gift cards',
        document__metadata: { team: 'support' },
      },
    });
    assert(upserted.created === 1 && upserted.documents[0].id === 'zap-doc-1', JSON.stringify(upserted));
    const batch = await run('creates.upsert_document.operation.perform', {
      inputData: { datastore_id: config.datastore, documents: [{ id: 'zap-doc-2', text: 'Second.' }, { id: 'zap-doc-3', text: 'Third.' }] },
    });
    assert(batch.created === 2, JSON.stringify(batch));
    return upserted.documents[0].upstream_id;
  });

  await step('search_query_datastore', async () => {
    const found = await run('searches.query_datastore.operation.perform', {
      inputData: { datastore_id: config.datastore, query: 'return window', top_k: '3' },
    });
    assert(Array.isArray(found) && found.length >= 1 && found[0].text, JSON.stringify(found).slice(0, 200));
    return found.length;
  });

  await step('create_delete_document', async () => {
    const deleted = await run('creates.delete_document.operation.perform', {
      inputData: { datastore_id: config.datastore, document_id: 'zap-doc-1' },
    });
    assert(deleted.deleted === true && deleted.upstream_id === upserted.documents[0].upstream_id, JSON.stringify(deleted));
    return deleted;
  });

  await step('create_query_agent_inline', async () => {
    const answer = await run('creates.query_agent.operation.perform', {
      inputData: { agent_id: config.agent, query: 'What is your return policy?' },
      meta: { isLoadingSample: true },
    });
    assert(answer.status === 'answered' && answer.answer, JSON.stringify(answer).slice(0, 200));
    return answer.conversation_id;
  });

  await step('create_query_agent_long_via_perform_resume', async () => {
    await sim('POST', '/faults', { kind: 'latency', path: '/query$', seconds: config.slowSeconds });
    const callback = await receiver();
    const started = Date.now();
    const interim = await run(
      'creates.query_agent.operation.perform',
      { inputData: { agent_id: config.agent, query: 'Take your time.' } },
      callback.url,
    );
    const interimMs = Date.now() - started;
    assert(interim.status === 'pending' && interim.job_id, JSON.stringify(interim));
    assert(interimMs < config.slowSeconds * 1000, `perform waited ${interimMs} ms`);
    const delivery = await callback.next(30000);
    callback.close();
    await sim('DELETE', '/faults');
    const result = await run('creates.query_agent.operation.performResume', {
      inputData: { agent_id: config.agent, query: 'Take your time.' },
      outputData: interim,
      cleanedRequest: JSON.parse(delivery.content),
    });
    assert(result.status === 'answered' && result.answer, JSON.stringify(result).slice(0, 200));
    assert(delivery.headers['webhook-id'] === interim.job_id, 'callback webhook-id is not the job id');
    return { job_id: interim.job_id, interim_ms: interimMs, waited_ms: Date.now() - started };
  });

  await step('error_422_halts', async () => {
    const error = await errorOf(
      run('searches.query_datastore.operation.perform', { inputData: { datastore_id: config.datastore, query: 'x', top_k: 500 } }),
    );
    assert(error.name === 'HaltedError' && /top_k/.test(error.message), `${error.name}: ${error.message}`);
    return error.message;
  });

  await step('error_429_throttles_with_retry_after', async () => {
    await sim('POST', '/faults', { kind: 'rate_limit', path: '/datastores', retry_after: 7, times: 10 });
    try {
      const error = await errorOf(run('triggers.list_datastores.operation.perform', { meta: { page: 0 } }));
      const detail = JSON.parse(error.message);
      assert(error.name === 'ThrottledError' && detail.delay >= 1, `${error.name}: ${error.message}`);
      return detail;
    } finally {
      await sim('DELETE', '/faults');
    }
  });
};

main()
  .catch((error) => steps.push({ step: 'harness', ok: false, detail: String(error && error.stack) }))
  .finally(() => {
    console.log(JSON.stringify({ step: 'done', ok: steps.every((s) => s.ok), detail: steps.length }));
    process.exit(0);
  });
