// The real agent's log as an operator reads it: each start-up fact once, each binding once.
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { startTestAgent, type TestAgent } from './support/agent.js';

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

function capture() {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
  const messages = (msg: string) => lines.filter((l) => JSON.parse(l).msg === msg);
  return { lines, log, messages };
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
}

it('says "services resumed" once per start, with the summary', async () => {
  const { log, lines, messages } = capture();
  agent = await startTestAgent({ log });
  const services = [{ name: 'oximeter', addresses: ['fd00:1122:3344:1::5'], gz_addresses: [] }];
  expect((await agent.request('PUT', '/services', { services })).status).toBe(204);
  agent = await agent.restart();
  const adopted = () => messages('services resumed').some((l) => JSON.parse(l).adopted?.includes('oximeter'));
  await until(adopted);
  // Anything else that would say it runs on the promise chain that said it: microtasks, done by now.
  await new Promise((resolve) => setImmediate(resolve));

  const resumed = messages('services resumed').map((l) => JSON.parse(l));
  expect(resumed.map((l) => l.adopted)).toEqual([[], ['oximeter']]);
  expect(resumed[1]).toMatchObject({ recreated: [], failed: [] });
  for (const line of lines) expect(line.match(/"component":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
});
