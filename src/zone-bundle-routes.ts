// GET /zones/bundles and GET /zones/bundles/{zone}/{id}: the zone bundles the agent collected
// (src/zone-bundle.ts), for an operator. Not in the 2022 contract (modern omicron serves bundles
// under these paths); the descriptions say so, and the contract test compares only the
// contract's paths.
import { Type } from 'typebox';
import { objectNotFound } from './common/errors.js';
import { ZONENAME_REGEXP } from './host/names.js';
import type { App } from './server.js';
import type { SledAgent } from './sled-agent.js';
import { bundleDir, listBundles, openBundle } from './zone-bundle.js';

const NOT_IN_CONTRACT = 'Not in the 2022 sled-agent contract (omicron 5c76e0e8d34f): an operator\'s endpoint, as in modern omicron.';

export const ZoneBundleInfoSchema = Type.Object({
  zone: Type.String({ description: 'the zone the bundle is about' }),
  id: Type.String({ format: 'uuid' }),
  time: Type.String({ format: 'date-time', description: 'when it was collected' }),
  size: Type.Integer({ minimum: 0, description: 'bytes of the archive' }),
  cause: Type.String({ description: 'what went wrong, as the agent logged it' }),
}, { additionalProperties: false });

const ZoneParams = Type.Object({
  zone: Type.String({ pattern: ZONENAME_REGEXP.source, maxLength: 63 }),
  id: Type.String({ format: 'uuid' }),
});

const listSchema = {
  operationId: 'zone_bundle_list',
  description: 'The zone bundles on this sled, oldest first: each a tar.gz of what the agent collected before tearing '
    + 'down a zone after a failure (the zone\'s SMF state and service logs, the agent\'s log lines and ledger record for it, '
    + `the host's view of its links and datasets). ${NOT_IN_CONTRACT}`,
  response: { 200: Type.Array(ZoneBundleInfoSchema) },
} as const;

const getSchema = {
  operationId: 'zone_bundle_get',
  description: `One zone bundle, as application/gzip (a tar archive; bundle.json lists its files and the steps that failed). ${NOT_IN_CONTRACT}`,
  params: ZoneParams,
  response: {
    200: {
      description: 'the bundle (tar.gz)',
      content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } },
    },
  },
} as const;

export function zoneBundleRoutes(app: App, agentOf: () => SledAgent): void {
  app.get('/zones/bundles', { schema: listSchema }, async (request) => listBundles(bundleDir(agentOf().config.data_dir), request.log));

  app.get('/zones/bundles/:zone/:id', { schema: getSchema }, async (request, reply) => {
    const { zone, id } = request.params;
    const bundle = await openBundle(bundleDir(agentOf().config.data_dir), zone, id);
    if (bundle === null) throw objectNotFound(`no zone bundle ${id} for zone ${zone}`);
    // The reply is typed from the documented body (a binary string); fastify sends a stream as it is.
    const body = bundle.file.createReadStream() as unknown as string;
    // Chunked, without a content-length (the listing gives the size): with one, a client can have
    // the whole body before the stream has ended the response here, and a shutdown starting then
    // finds that connection busy, so it stays open until its keep-alive times out.
    return reply
      .type('application/gzip')
      .header('content-disposition', `attachment; filename="${zone}-${id}.tar.gz"`)
      .send(body);
  });
}
