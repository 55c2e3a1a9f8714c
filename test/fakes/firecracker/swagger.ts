// Firecracker's own API description (v1.16.1's swagger file, vendored in test/fixtures/firecracker) as a request
// checker: which method and path exist, what their path parameters and bodies must look like. Bodies are walked
// through the schema definitions: required fields, types, enums, minimum/maximum, and no unknown fields (serde's
// deny_unknown_fields in Firecracker). Nothing here is typed by hand about a particular request.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SWAGGER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/firecracker/firecracker-1.16.1.swagger.json');

interface Schema {
  $ref?: string;
  type?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean;
  items?: Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
}

interface Parameter {
  name: string;
  in: 'path' | 'body';
  required?: boolean;
  type?: string;
  schema?: Schema;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
}

interface SwaggerDoc {
  info: { version: string };
  paths: Record<string, Record<string, Operation>>;
  definitions: Record<string, Schema>;
}

export interface MatchedRoute {
  operationId: string;
  /** Path parameters by name (drive_id, iface_id, ...). */
  params: Record<string, string>;
  bodyParam: Parameter | null;
}

/** What the API answers for a request that does not fit: Firecracker's status and fault_message. */
export class ApiFault extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class Swagger {
  readonly doc: SwaggerDoc;
  private readonly routes: Array<{ pattern: RegExp; names: string[]; methods: Record<string, Operation> }>;

  constructor(file = SWAGGER_FILE) {
    this.doc = JSON.parse(fs.readFileSync(file, 'utf8')) as SwaggerDoc;
    this.routes = Object.entries(this.doc.paths).map(([template, methods]) => {
      const names: string[] = [];
      const source = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([^}]+)\}/g, (_m, name: string) => {
        names.push(name);
        return '([^/]*)';
      });
      return { pattern: new RegExp(`^${source}$`), names, methods };
    });
  }

  /** The operation for `method path`, or Firecracker's 400 "Invalid request method and/or path". */
  route(method: string, urlPath: string): MatchedRoute {
    for (const r of this.routes) {
      const m = r.pattern.exec(urlPath);
      if (!m) continue;
      const op = r.methods[method.toLowerCase()];
      if (!op) break;
      const params: Record<string, string> = {};
      r.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1]!)));
      return { operationId: op.operationId, params, bodyParam: op.parameters?.find((p) => p.in === 'body') ?? null };
    }
    throw new ApiFault(400, `Invalid request method and/or path: ${method} ${urlPath}.`);
  }

  /** Checks `body` (parsed JSON, or undefined when none came) against the operation's body parameter. */
  checkBody(route: MatchedRoute, method: string, body: unknown): void {
    const param = route.bodyParam;
    if (body === undefined) {
      if (param?.required) throw new ApiFault(400, `Empty ${method} request.`);
      return;
    }
    if (!param?.schema) throw new ApiFault(400, `${method} request cannot have a body.`);
    const problem = this.problem(param.schema, body, '');
    if (problem) throw new ApiFault(400, `An error occurred when deserializing the json body of a request: ${problem}.`);
  }

  private resolve(schema: Schema): Schema {
    let s = schema;
    while (s.$ref) {
      const name = s.$ref.replace('#/definitions/', '');
      const def = this.doc.definitions[name];
      if (!def) throw new Error(`swagger: no definition ${name}`);
      s = def;
    }
    return s;
  }

  /** Why `value` does not fit `schema`, or null. */
  problem(schema: Schema, value: unknown, at: string): string | null {
    const s = this.resolve(schema);
    const where = at === '' ? 'the body' : at;
    // serde would read null as "absent" for an Option; banger leaves optional fields out instead.
    if (value === null) return `${where}: null is not allowed (leave the field out)`;
    if (s.enum && !s.enum.includes(value)) return `${where}: unknown variant ${JSON.stringify(value)}, expected one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`;
    switch (s.type ?? (s.properties ? 'object' : undefined)) {
      case 'object': {
        if (typeof value !== 'object' || Array.isArray(value)) return `${where}: invalid type, expected an object`;
        const obj = value as Record<string, unknown>;
        for (const name of s.required ?? []) if (!(name in obj)) return `missing field \`${name}\`${at ? ` in ${at}` : ''}`;
        for (const [name, v] of Object.entries(obj)) {
          const prop = s.properties?.[name];
          if (!prop) {
            if (s.additionalProperties === true) continue;
            return `unknown field \`${name}\`${at ? ` in ${at}` : ''}, expected one of ${Object.keys(s.properties ?? {}).map((k) => `\`${k}\``).join(', ')}`;
          }
          const p = this.problem(prop, v, at ? `${at}.${name}` : name);
          if (p) return p;
        }
        return null;
      }
      case 'array':
        if (!Array.isArray(value)) return `${where}: invalid type, expected an array`;
        for (const [i, item] of value.entries()) {
          const p = s.items ? this.problem(s.items, item, `${where}[${i}]`) : null;
          if (p) return p;
        }
        return null;
      case 'string':
        return typeof value === 'string' ? null : `${where}: invalid type, expected a string`;
      case 'boolean':
        return typeof value === 'boolean' ? null : `${where}: invalid type, expected a boolean`;
      case 'integer':
        if (typeof value !== 'number' || !Number.isInteger(value)) return `${where}: invalid type, expected an integer`;
        if (s.minimum !== undefined && value < s.minimum) return `${where}: ${value} is below the minimum ${s.minimum}`;
        if (s.maximum !== undefined && value > s.maximum) return `${where}: ${value} is above the maximum ${s.maximum}`;
        return null;
      case 'number':
        return typeof value === 'number' ? null : `${where}: invalid type, expected a number`;
      default:
        return null;
    }
  }
}

/** Firecracker's rule for API resource ids (parsed_request.rs checked_id), ASCII only. */
export function checkedId(id: string): void {
  if (id === '') throw new ApiFault(400, 'The ID cannot be empty.');
  if (!/^[A-Za-z0-9_]+$/.test(id)) throw new ApiFault(400, 'API Resource IDs can only contain alphanumeric characters and underscores.');
}
