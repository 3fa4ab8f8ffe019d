/**
 * The OpenAPI 3.1 description of the JSON API, served at /openapi.json. Written by
 * hand next to the controllers it describes; a test checks that every API route the
 * application serves is listed here.
 */
import { UPLOAD_CONTENT_TYPE } from '../ingest/upload-format.js';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object, description = 'OK') => ({ description, content: { 'application/json': { schema } } });
const error = (description: string) => json(ref('Error'), description);
const q = (name: string, description: string, schema: object = { type: 'string' }) => ({ name, in: 'query', required: false, description, schema });
const p = (name: string, description: string) => ({ name, in: 'path', required: true, description, schema: { type: 'string' } });
const buildId = p('id', 'Build ID (the cluster job ID, j-...)');
const read = { security: [{}, { bearer: [] }] };
const write = { security: [{ bearer: [] }] };

const BUILD_FILTERS = [
  q('pool', 'Only builds on this pool'),
  q('platform', 'Only builds on this platform'),
  q('state', 'Only builds that ended so', { type: 'string', enum: ['succeeded', 'failed', 'cancelled'] }),
  q('client', 'Only builds submitted by this client'),
  q('q', 'Part of the job name, or a whole build ID'),
  q('tag', 'Only builds with this tag'),
  q('before', 'Cursor: the `next` of the previous page'),
  q('limit', 'Page size (1-200, default 50)', { type: 'integer', minimum: 1, maximum: 200 }),
];

export function openApiDocument(serverUrl: string): object {
  return {
    openapi: '3.1.0',
    info: { title: 'Cairn results-store', version: '1', description: 'Build history, logs, artifacts and live state of a Cairn cluster.' },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token (see the `token` command). Reading may be public.' } },
      schemas: {
        Error: { type: 'object', properties: { statusCode: { type: 'integer' }, message: { type: 'string' } }, required: ['statusCode', 'message'] },
        State: { type: 'string', enum: ['succeeded', 'failed', 'cancelled'] },
        BuildSummary: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            job: { type: 'string' },
            pool: { type: 'string' },
            platform: { type: 'string' },
            client: { type: 'string' },
            worker: { type: 'string' },
            state: ref('State'),
            startedAt: { type: 'integer', description: 'epoch ms' },
            finishedAt: { type: 'integer', description: 'epoch ms' },
            durationMs: { type: 'integer' },
            stepsTotal: { type: 'integer' },
            stepsCached: { type: 'integer' },
            failure: { type: ['string', 'null'] },
          },
        },
        BuildPage: { type: 'object', properties: { items: { type: 'array', items: ref('BuildSummary') }, next: { type: 'string' } }, required: ['items'] },
        Step: { type: 'object', properties: { position: { type: 'integer' }, stage: { type: 'string' }, op: { type: 'string' }, stepId: { type: 'string' }, cached: { type: 'boolean' }, ms: { type: 'integer' } } },
        Artifact: { type: 'object', properties: { path: { type: 'string' }, size: { type: 'integer' }, sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } } },
        BuildDetail: {
          allOf: [
            ref('BuildSummary'),
            {
              type: 'object',
              properties: {
                spec: { type: 'string' },
                contextDigest: { type: ['string', 'null'] },
                cacheHint: { type: 'string' },
                snapshotId: { type: ['string', 'null'] },
                attempts: { type: 'integer' },
                submittedAt: { type: 'integer' },
                storedAt: { type: 'integer' },
                source: { type: 'string', enum: ['cluster', 'upload'] },
                note: { type: ['string', 'null'] },
                logSha256: { type: ['string', 'null'] },
                logBytes: { type: ['integer', 'null'] },
                steps: { type: 'array', items: ref('Step') },
                artifacts: { type: 'array', items: ref('Artifact') },
                tags: { type: 'array', items: { type: 'string' } },
                reproduce: { type: 'object', properties: { fetch: { type: 'string' }, local: { type: 'string' }, submit: { type: 'string' } } },
                links: { type: 'object' },
              },
            },
          ],
        },
        JobSummary: {
          type: 'object',
          properties: { name: { type: 'string' }, lastBuild: { type: ['string', 'null'] }, lastState: { oneOf: [ref('State'), { type: 'null' }] }, lastFinishedAt: { type: ['integer', 'null'] }, lastPool: { type: ['string', 'null'] } },
        },
        LiveJob: {
          type: 'object',
          properties: {
            job: { type: 'string' },
            name: { type: 'string' },
            client: { type: 'string' },
            pool: { type: 'string' },
            state: { type: 'string', enum: ['queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled'] },
            worker: { type: 'string' },
            at: { type: 'integer' },
            since: { type: 'integer' },
          },
        },
      },
    },
    paths: {
      '/api/v1/builds': { get: { summary: 'Builds, newest first, filtered', parameters: BUILD_FILTERS, ...read, responses: { 200: json(ref('BuildPage')), 400: error('A filter is malformed') } } },
      '/api/v1/builds/{id}': { get: { summary: 'One build in full', parameters: [buildId], ...read, responses: { 200: json(ref('BuildDetail')), 404: error('Not stored') } } },
      '/api/v1/builds/{id}/artifacts/{path}': {
        get: {
          summary: 'Download an artifact (verified against its SHA-256 before it is sent)',
          parameters: [buildId, p('path', 'The artifact path as listed in the build')],
          ...read,
          responses: {
            200: { description: 'The bytes', headers: { 'X-Checksum-Sha256': { schema: { type: 'string' } } }, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
            404: error('No such artifact'),
            500: error('The stored blob failed its checksum and is not served'),
          },
        },
      },
      '/api/v1/builds/{id}/tags/{tag}': {
        put: { summary: 'Tag a build (tagged builds are kept by retention)', parameters: [buildId, p('tag', 'Tag name')], ...write, responses: { 204: { description: 'Tagged' }, 401: error('No valid token'), 403: error('Role too low') } },
        delete: { summary: 'Remove a tag from a build', parameters: [buildId, p('tag', 'Tag name')], ...write, responses: { 204: { description: 'Untagged' } } },
      },
      '/api/v1/jobs': {
        get: { summary: 'Jobs by name with their latest build', parameters: [q('q', 'Part of the name'), q('state', 'Latest build ended so'), q('after', 'Cursor: the `next` of the previous page')], ...read, responses: { 200: json({ type: 'object', properties: { items: { type: 'array', items: ref('JobSummary') }, next: { type: 'string' } } }) } },
      },
      '/api/v1/jobs/{name}': {
        get: { summary: "A job's last 100 builds and success rate", parameters: [p('name', 'Job name (URL-encoded)')], ...read, responses: { 200: json({ allOf: [ref('JobSummary'), { type: 'object', properties: { history: { type: 'array', items: ref('BuildSummary') }, successRate: { type: ['number', 'null'] } } }] }), 404: error('No such job') } },
      },
      '/api/v1/compare': {
        get: { summary: 'Compare two builds: spec diff, changed step IDs, timing', parameters: [{ ...q('a', 'Build A'), required: true }, { ...q('b', 'Build B'), required: true }], ...read, responses: { 200: json({ type: 'object' }), 404: error('A build is not stored') } },
      },
      '/api/v1/failures': { get: { summary: 'Failed builds, newest first', parameters: [q('before', 'Cursor'), q('limit', 'Page size')], ...read, responses: { 200: json(ref('BuildPage')) } } },
      '/api/v1/live': { get: { summary: 'Builds queued or running now (from job events)', ...read, responses: { 200: json({ type: 'object', properties: { jobs: { type: 'array', items: ref('LiveJob') } } }) } } },
      '/api/v1/pools': { get: { summary: "The scheduler's pools", ...read, responses: { 200: json({ type: 'array' }), 503: error('The scheduler did not answer') } } },
      '/api/v1/workers': { get: { summary: "The scheduler's workers: load, cache hints, free disk", ...read, responses: { 200: json({ type: 'array' }), 503: error('The scheduler did not answer') } } },
      '/api/v1/queues': { get: { summary: 'Queued jobs per pool and client', ...read, responses: { 200: json({ type: 'array' }), 503: error('The scheduler did not answer') } } },
      '/api/v1/uploads': {
        post: {
          summary: 'Store a build made outside the cluster',
          description: 'Body: one line of JSON `{"result": BuildResult, "log"?: string}`, then each artifact\'s bytes in the order listed, exactly `size` bytes each. Refused uploads store nothing.',
          ...write,
          requestBody: { required: true, content: { [UPLOAD_CONTENT_TYPE]: { schema: { type: 'string', format: 'binary' } } } },
          responses: {
            201: json({ type: 'object', properties: { build: { type: 'string' }, url: { type: 'string' } } }, 'Stored'),
            400: error('Malformed manifest or truncated body'),
            401: error('No valid token'),
            403: error('Role too low'),
            409: error('Already stored'),
            413: error('Manifest or body too large (CAIRN_RESULTS_MAX_UPLOAD_BYTES)'),
            415: error('Wrong Content-Type'),
            422: error('Bad artifact path, size or checksum'),
          },
        },
      },
      '/api/v1/tokens': {
        post: {
          summary: 'Issue a token (admin); the token is shown only in this answer',
          security: [{ bearer: [] }],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { user: { type: 'string' }, role: { type: 'string', enum: ['reader', 'writer', 'admin'] }, label: { type: 'string' }, changeRole: { type: 'boolean', description: "Give an existing user this role (otherwise a different role is refused with 409)" } },
                  required: ['user', 'role'],
                },
              },
            },
          },
          responses: {
            201: json({ type: 'object', properties: { id: { type: 'integer' }, user: { type: 'string' }, role: { type: 'string' }, token: { type: 'string' } } }, 'Issued'),
            409: error('The user exists with another role and changeRole was not given'),
            415: error('The body is not JSON'),
          },
        },
      },
      '/api/v1/tokens/{id}': {
        delete: {
          summary: 'Revoke a token (admin), at once',
          security: [{ bearer: [] }],
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer' } }],
          responses: { 204: { description: 'Revoked' }, 404: error('No such token') },
        },
      },
    },
  };
}
