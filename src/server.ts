// The fastify app factory every HTTP server of the agent shares: the omicron error envelope,
// request ids, the 1 MiB body limit, strict JSON validation with the contract's integer formats,
// and one log line per request.
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AjvCompiler } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { Logger } from 'pino';
import { ApiError } from './common/errors.js';

/** dropshot's `request_body_max_bytes` on the sled, bootstrap and sim servers. */
export const REQUEST_BODY_MAX_BYTES = 1 << 20;

/** fastify's default; every path parameter of these APIs is a UUID or a zone name (at most 64). */
const MAX_PARAM_LENGTH = 100;

const intFormat = (min: number, max: number) => ({
  type: 'number' as const,
  validate: (n: number) => Number.isInteger(n) && n >= min && n <= max,
});

/**
 * The contract's integer formats, enforced. JSON numbers above 2^53 cannot be represented
 * exactly in JavaScript, so uint64/int64 are refused past that instead of silently rounded.
 */
export const CONTRACT_FORMATS = {
  uint8: intFormat(0, 0xff),
  uint16: intFormat(0, 0xffff),
  uint32: intFormat(0, 0xffff_ffff),
  uint64: intFormat(0, Number.MAX_SAFE_INTEGER),
  int64: intFormat(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
  ip: (s: string) => isIP(s) !== 0,
  ipv6: (s: string) => isIP(s) === 6,
};

/**
 * One pool of compiled validators and serializers for every app in the process. Fastify builds
 * its compilers per app, and the route schemas are module constants, so each app (every agent a
 * test or a benchmark starts, the sim's and the Propolis servers beside it) compiled them again,
 * and its first requests ran code V8 had never seen. The ajv compiler already keeps one ajv per
 * set of options and shared schemas, which compiles a schema object once; serializers are kept
 * here by the same key and the schema object.
 */
const buildValidator = AjvCompiler();
const serializerFactory = SerializerSelector();
const serializers = new Map<string, WeakMap<object, unknown>>();
const buildSerializer: typeof serializerFactory = (externalSchemas, serializerOpts) => {
  const build = serializerFactory(externalSchemas, serializerOpts);
  const key = JSON.stringify([externalSchemas, serializerOpts]);
  let built = serializers.get(key);
  if (built === undefined) serializers.set(key, built = new WeakMap());
  const cache = built;
  return (route) => {
    const schema = route.schema as object;
    let serialize = cache.get(schema) as ReturnType<typeof build> | undefined;
    if (serialize === undefined) cache.set(schema, serialize = build(route));
    return serialize;
  };
};

export interface ServerOptions {
  logger: Logger;
  bodyLimit?: number;
  /** Extra schemas referenced by $id from route schemas. */
  sharedSchemas?: object[];
}

/** One log line per request, when it is done (fastify's default writes two). */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (error) request.log.error({ ...line, err: error }, 'request failed');
    else request.log.info(line, 'request completed');
  }
}

export type App = FastifyInstance<any, any, any, Logger, TypeBoxTypeProvider>;

export function createServer(options: ServerOptions): App {
  const bodyLimit = options.bodyLimit ?? REQUEST_BODY_MAX_BYTES;
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    logController: new OneLinePerRequest({ requestIdLogLabel: 'req_id' }),
    // fastify's own 503 while closing has a fixed body without the envelope; the onRequest hook
    // below answers those requests instead.
    return503OnClosing: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // A path that does not decode, or a parameter past the router's limit, is refused before
    // routing, so setErrorHandler never sees it.
    frameworkErrors: (error, request, reply) => {
      void reply.header('x-request-id', request.id);
      sendError(error, request, reply);
    },
    schemaController: { compilersFactory: { buildValidator, buildSerializer } },
    ajv: {
      customOptions: {
        // The wire is typed: "5" is not a generation. Unknown fields are ignored, as serde does.
        coerceTypes: false,
        removeAdditional: false,
        discriminator: true,
        // The contract's patterns are ECMA-262 without the u flag (Ipv6Net escapes ':').
        unicodeRegExp: false,
        allErrors: false,
        formats: CONTRACT_FORMATS,
      },
    },
    // fast-json-stringify picks a union's branch with an ajv of its own, which must know the
    // contract's formats too (without them it warns `unknown format "uint64" ignored`).
    serializerOpts: { ajv: { formats: CONTRACT_FORMATS } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Every body on these APIs is JSON; anything else is a 415 rather than a string to validate.
  app.removeContentTypeParser('text/plain');
  // fastify's own parser (with its prototype-poisoning checks), then serde_json's nesting limit:
  // the original refused a body nested deeper with a 400, and here ajv's recursive validators ran
  // out of stack on one (a Crucible volume of 3,000 nested sub-volumes was a 500).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parseJson(request, body as string, (err, value) => {
      if (err) done(err, undefined);
      else if (nestedDeeperThan(value, JSON_MAX_DEPTH)) done(recursionLimitExceeded(), undefined);
      else done(null, value);
    });
  });
  for (const schema of options.sharedSchemas ?? []) app.addSchema(schema);

  const sendError = (error: FastifyError | ApiError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, code, message } = describeError(error, request, bodyLimit);
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.debug({ err: error.message }, 'request refused');
    void reply.status(status).send({ request_id: request.id, error_code: code, message });
  };

  // Set by the first preClose hook, which fastify runs as soon as close() starts; requests
  // already past onRequest run to completion while the server drains.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  // Callback style: an async hook costs a promise per request on the hot path.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    if (!closing) {
      done();
      return;
    }
    void reply.status(503).send({
      request_id: request.id,
      error_code: 'ServiceUnavailable',
      message: 'the sled agent is shutting down and takes no new requests; retry against it once it is back',
    });
  });

  app.setErrorHandler(sendError);

  // As dropshot's router: a path served with other methods is a 405 naming them, not a 404.
  const routes: Array<{ path: RegExp; method: string }> = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ path: routePattern(route.url), method });
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] as string;
    const allowed = [...new Set(routes.filter((r) => r.path.test(path)).map((r) => r.method))].sort();
    if (allowed.length > 0) {
      void reply.status(405).header('allow', allowed.join(', ')).send({
        request_id: request.id,
        error_code: 'MethodNotAllowed',
        message: `${request.method} is not allowed on ${path}; it takes ${allowed.join(', ')}`,
      });
      return;
    }
    void reply.status(404).send({
      request_id: request.id,
      error_code: 'NotFound',
      message: `no route for ${request.method} ${path}`,
    });
  });

  return app;
}

/** serde_json's recursion limit: it refuses the 128th level of arrays and objects. */
const JSON_MAX_DEPTH = 127;

/** Whether `value` nests arrays and objects more than `max` deep; iterative, as the value can be deeper than the stack. */
function nestedDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: Array<{ node: object; depth: number }> = [{ node: value, depth: 1 }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    if (next.depth > max) return true;
    for (const child of Array.isArray(next.node) ? next.node : Object.values(next.node)) {
      if (typeof child === 'object' && child !== null) stack.push({ node: child, depth: next.depth + 1 });
    }
  }
  return false;
}

function recursionLimitExceeded(): FastifyError {
  return Object.assign(new Error(`recursion limit exceeded: arrays and objects nested more than ${JSON_MAX_DEPTH} deep`), {
    code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400, name: 'FastifyError',
  }) as FastifyError;
}

/** A fastify route's URL as a pattern for a request's path: `:name` is one segment, `*` the rest. */
function routePattern(url: string): RegExp {
  const segments = url.split('/').map((segment) => {
    if (segment.startsWith(':')) return '[^/]+';
    if (segment === '*') return '.*';
    return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${segments.join('/')}$`);
}

function describeError(error: FastifyError | ApiError, request: FastifyRequest, bodyLimit: number): { status: number; code: string; message: string } {
  if (error instanceof ApiError) {
    return { status: error.statusCode, code: error.errorCode, message: error.message };
  }
  if ('validation' in error && error.validation) {
    return { status: 400, code: 'InvalidRequest', message: validationMessage(error) };
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return { status, code: CLIENT_ERROR_CODES[status] ?? 'InvalidRequest', message: clientMessage(error, status, request, bodyLimit) };
  }
  return { status: 500, code: 'Internal', message: 'Internal Server Error' };
}

const CLIENT_ERROR_CODES: Record<number, string> = {
  413: 'PayloadTooLarge',
  414: 'UriTooLong',
  415: 'UnsupportedMediaType',
};

function clientMessage(error: FastifyError, status: number, request: FastifyRequest, bodyLimit: number): string {
  if (status === 413) return `request body is larger than the limit of ${bodyLimit} bytes`;
  if (status === 415) return `${error.message}; send the body as application/json`;
  const path = request.url.split('?')[0] as string;
  if (error.code === 'FST_ERR_BAD_URL') {
    return `the path ${path} does not decode: each % must start a two-hex-digit escape, and the escapes must form UTF-8`;
  }
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return `the path ${path} has a parameter longer than ${MAX_PARAM_LENGTH} characters; no parameter of this API is that long`;
  }
  if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) {
    return `unable to parse JSON body: ${error.message}`;
  }
  return error.message;
}

/** "body/target/run_state must be one of: running, stopped, ..." rather than ajv's terse text. */
function validationMessage(error: FastifyError): string {
  const first = error.validation?.[0];
  if (!first) return error.message;
  const where = `${error.validationContext ?? 'body'}${first.instancePath}`;
  const params = first.params as Record<string, unknown>;
  switch (first.keyword) {
    case 'required':
      return `${where}/${String(params.missingProperty)} is required`;
    case 'enum':
      return `${where} must be one of: ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'format':
      return `${where} must be a valid ${String(params.format)}`;
    case 'discriminator': {
      const tag = String(params.tag);
      return params.error === 'mapping'
        ? `${where}/${tag} has an unknown value`
        : `${where}/${tag} must be a string naming the variant`;
    }
    default:
      return `${where} ${first.message ?? 'is invalid'}`;
  }
}

