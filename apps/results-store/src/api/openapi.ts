/**
 * The OpenAPI 3.1 description of the JSON API, served at /openapi.json, made from the
 * zod schemas the API validates its input with (http/filters.ts, TokenRequest) and
 * answers with (schemas.ts): `API` lists every route, and the document is generated
 * from it. Tests check that every API route the application serves is listed, and that
 * every route's answers fit the schema listed for their status.
 */
import { z } from 'zod';
import { BuildQuery, JobQuery } from '../http/filters.js';
import { UPLOAD_CONTENT_TYPE } from '../ingest/upload-format.js';
import * as S from './schemas.js';

type Method = 'get' | 'put' | 'post' | 'delete';

export interface Answer {
  readonly description: string;
  /** The JSON body; none for an empty answer or one of `type`. */
  readonly schema?: z.ZodType;
  /** A body that is not JSON: its media type. */
  readonly type?: string;
}

export interface Operation {
  readonly summary: string;
  readonly description?: string;
  /** Reads follow CAIRN_RESULTS_READ (public or a token); writes need a writer's token, admin an admin's. */
  readonly access: 'read' | 'write' | 'admin';
  /** Path parameters and what they are. */
  readonly path?: Readonly<Record<string, { readonly description: string; readonly schema?: z.ZodType }>>;
  readonly query?: z.ZodObject;
  readonly body?: { readonly type: string; readonly schema?: z.ZodType };
  readonly responses: Readonly<Record<number, Answer>>;
}

const json = (description: string, schema: z.ZodType): Answer => ({ description, schema });
const error = (description: string): Answer => json(description, S.ApiError);
const buildId = { id: { description: 'Build ID (the cluster job ID, j-...)' } };
const unreachable = { 503: error('The scheduler did not answer') };
const denied = { 401: error('No valid token'), 403: error('Role too low') };

export const API: Readonly<Record<string, Partial<Record<Method, Operation>>>> = {
  '/api/v1/builds': {
    get: {
      summary: 'Builds, newest first, filtered',
      access: 'read',
      query: BuildQuery,
      responses: { 200: json('OK', S.BuildPage), 400: error('A filter is malformed') },
    },
  },
  '/api/v1/builds/{id}': {
    get: {
      summary: 'One build in full',
      access: 'read',
      path: buildId,
      responses: { 200: json('OK', S.Build), 400: error('Not a build ID'), 404: error('Not stored') },
    },
  },
  '/api/v1/builds/{id}/artifacts/{path}': {
    get: {
      summary: 'Download an artifact (verified against its SHA-256 before it is sent)',
      access: 'read',
      path: { ...buildId, path: { description: 'The artifact path as listed in the build' } },
      responses: {
        200: { description: 'The bytes (X-Checksum-Sha256: their SHA-256)', type: 'application/octet-stream' },
        304: { description: 'Not modified (If-None-Match)' },
        400: error('Not a build ID'),
        404: error('No such artifact'),
        500: error('The stored blob failed its checksum and is not served'),
      },
    },
  },
  '/api/v1/builds/{id}/tags/{tag}': {
    put: {
      summary: 'Tag a build (tagged builds are kept by retention)',
      access: 'write',
      path: { ...buildId, tag: { description: 'Tag name: 1-64 letters, digits, ., _ or -' } },
      responses: { 204: { description: 'Tagged' }, 400: error('Not a build ID or tag'), ...denied, 404: error('Not stored') },
    },
    delete: {
      summary: 'Remove a tag from a build',
      access: 'write',
      path: { ...buildId, tag: { description: 'Tag name' } },
      responses: { 204: { description: 'Untagged' }, 400: error('Not a build ID'), ...denied },
    },
  },
  '/api/v1/jobs': {
    get: {
      summary: 'Jobs by name with their latest build',
      access: 'read',
      query: JobQuery,
      responses: { 200: json('OK', S.JobPage), 400: error('A filter is malformed') },
    },
  },
  '/api/v1/jobs/{name}': {
    get: {
      summary: "A job's last 100 builds and success rate",
      access: 'read',
      path: { name: { description: 'Job name (URL-encoded)' } },
      responses: { 200: json('OK', S.Job), 404: error('No such job') },
    },
  },
  '/api/v1/compare': {
    get: {
      summary: 'Compare two builds: spec diff, changed step IDs, timing',
      access: 'read',
      query: z.object({ a: z.string().describe('Build A'), b: z.string().describe('Build B') }),
      responses: {
        200: json('OK', S.Comparison),
        400: error('Not a build ID'),
        404: error('A build is not stored'),
        503: error('Too many compares under way (Retry-After)'),
      },
    },
  },
  '/api/v1/failures': {
    get: {
      summary: 'Failed builds, newest first',
      access: 'read',
      query: BuildQuery.pick({ before: true, limit: true }),
      responses: { 200: json('OK', S.BuildPage), 400: error('A filter is malformed') },
    },
  },
  '/api/v1/live': { get: { summary: 'Builds queued or running now (from job events)', access: 'read', responses: { 200: json('OK', S.LiveJobs) } } },
  '/api/v1/pools': { get: { summary: "The scheduler's pools", access: 'read', responses: { 200: json('OK', S.Pools), ...unreachable } } },
  '/api/v1/workers': {
    get: { summary: "The scheduler's workers: load, cache hints, free disk", access: 'read', responses: { 200: json('OK', S.Workers), ...unreachable } },
  },
  '/api/v1/queues': { get: { summary: 'Queued jobs per pool and client', access: 'read', responses: { 200: json('OK', S.Queues), ...unreachable } } },
  '/api/v1/services': {
    get: {
      summary: 'The processes `cairn up` supervises, with their restarts and recent events',
      access: 'read',
      responses: { 200: json('OK', S.Services), 503: error('Their bucket could not be read') },
    },
  },
  '/api/v1/uploads': {
    post: {
      summary: 'Store a build made outside the cluster',
      description:
        'Body: one line of JSON `{"result": BuildResult, "log"?: string, "logIndex"?: {"v": 1, "t": [byte, ms, ...], "s": [[byte, step], ...]}}` (logIndex: when each piece of the log was written and where its steps start and finish, as the log stream says; the build page folds and times the log by it), then each artifact\'s bytes in the order listed, exactly `size` bytes each. Refused uploads store nothing.',
      access: 'write',
      body: { type: UPLOAD_CONTENT_TYPE },
      responses: {
        201: json('Stored', S.Stored),
        400: error('Malformed manifest or truncated body'),
        ...denied,
        409: error('Already stored'),
        413: error('Manifest or body too large (CAIRN_RESULTS_MAX_UPLOAD_BYTES)'),
        415: error('Wrong Content-Type'),
        422: error('Bad artifact path, size or checksum, or a logIndex that does not fit the log'),
      },
    },
  },
  '/api/v1/tokens': {
    post: {
      summary: 'Issue a token (admin); the token is shown only in this answer',
      access: 'admin',
      body: { type: 'application/json', schema: S.TokenRequest },
      responses: {
        201: json('Issued', S.Token),
        400: error('A field is malformed'),
        ...denied,
        409: error('The user exists with another role and changeRole was not given'),
        415: error('The body is not JSON'),
      },
    },
  },
  '/api/v1/tokens/{id}': {
    delete: {
      summary: 'Revoke a token (admin), at once',
      access: 'admin',
      path: { id: { description: 'Token ID', schema: z.number().int().min(1) } },
      responses: { 204: { description: 'Revoked' }, ...denied, 404: error('No such token') },
    },
  },
};

const REF = (id: string) => `#/components/schemas/${id}`;

/** A schema as JSON Schema: a named one as a reference to its component. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): object {
  const named = S.components.get(schema)?.id;
  if (named) return { $ref: REF(named) };
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  return rest;
}

function parameters(operation: Operation): object[] {
  const path = Object.entries(operation.path ?? {}).map(([name, p]) => ({
    name,
    in: 'path',
    required: true,
    description: p.description,
    schema: jsonSchema(p.schema ?? z.string()),
  }));
  const query = Object.entries(operation.query?.shape ?? {}).map(([name, field]) => {
    const schema = field as z.ZodType;
    const { description, ...json } = jsonSchema(schema) as { description?: string };
    return { name, in: 'query', required: !schema.safeParse(undefined).success, ...(description ? { description } : {}), schema: json };
  });
  return [...path, ...query];
}

function responses(operation: Operation): object {
  return Object.fromEntries(
    Object.entries(operation.responses).map(([status, answer]) => [
      status,
      {
        description: answer.description,
        ...(answer.schema
          ? { content: { 'application/json': { schema: jsonSchema(answer.schema) } } }
          : answer.type
            ? { content: { [answer.type]: { schema: { type: 'string', format: 'binary' } } } }
            : {}),
      },
    ]),
  );
}

function operationObject(operation: Operation): object {
  const params = parameters(operation);
  return {
    summary: operation.summary,
    ...(operation.description ? { description: operation.description } : {}),
    ...(params.length ? { parameters: params } : {}),
    // Reading may be public (CAIRN_RESULTS_READ): then no token is needed.
    security: operation.access === 'read' ? [{}, { bearer: [] }] : [{ bearer: [] }],
    ...(operation.body
      ? {
          requestBody: {
            required: true,
            content: {
              [operation.body.type]: { schema: operation.body.schema ? jsonSchema(operation.body.schema, 'input') : { type: 'string', format: 'binary' } },
            },
          },
        }
      : {}),
    responses: responses(operation),
  };
}

/** The components, made once: the schemas do not change while the service runs. */
const SCHEMAS = Object.fromEntries(
  Object.entries(z.toJSONSchema(S.components, { uri: REF, unrepresentable: 'any' }).schemas).map(([id, { $schema: _, $id: __, ...schema }]) => [id, schema]),
);

export function openApiDocument(serverUrl: string): object {
  return {
    openapi: '3.1.0',
    info: { title: 'Cairn results-store', version: '1', description: 'Build history, logs, artifacts and live state of a Cairn cluster.' },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token (see the `token` command). Reading may be public.' } },
      schemas: SCHEMAS,
    },
    paths: Object.fromEntries(
      Object.entries(API).map(([path, operations]) => [
        path,
        Object.fromEntries(Object.entries(operations).map(([method, op]) => [method, operationObject(op)])),
      ]),
    ),
  };
}
