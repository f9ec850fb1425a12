// The child of test/child-channel.test.ts: a serveParent() with handlers that echo, throw, emit
// events, hang until cancelled, and count the IPC messages this process received. argv[2]
// 'exit-early' exits before it is ready, 'never-ready' never says it is.
import { serveParent } from '../../src/sim/child-channel.js';

// Before serveParent's own listener: a batch is counted when it arrives, before its calls run.
let received = 0;
process.on('message', () => {
  received += 1;
});

let aborts = 0;

if (process.argv[2] === 'exit-early') process.exit(3);
// Work of its own that keeps it running, as the real children's servers do: only the channel's
// end makes it exit.
setInterval(() => {}, 60_000);
if (process.argv[2] !== 'never-ready') {
  const send = serveParent<{ i: number }>({
    echo: (args) => args,
    fail: ([message, code, detail]) => {
      throw Object.assign(new Error(message as string), { code, detail });
    },
    received: () => received,
    emit: ([n]) => {
      for (let i = 0; i < (n as number); i++) send({ i });
      return n;
    },
    hang: (_args, signal) => new Promise((_resolve, reject) => {
      signal?.addEventListener('abort', () => {
        aborts += 1;
        reject(signal.reason as Error);
      });
    }),
    aborts: () => aborts,
  }, 'test/child-channel.test.ts');
}
