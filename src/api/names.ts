// The Kubernetes name rules of the wire contract: pod names and namespaces (RFC 1123), and the
// identity a pod has in the store (`name`, or `namespace/name` outside the default namespace).
import { z } from 'zod';
import { PkmError } from '../errors.js';
import { type PodRoute, pathTo, podTemplates } from './paths.js';

// Kubernetes object names for pods: an RFC 1123 DNS subdomain, at most 253 characters,
// lowercase alphanumerics, '-' and '.', each label starting and ending alphanumeric (as apimachinery's IsDNS1123Subdomain).
const LABEL = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
const SUBDOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
export const MAX_POD_NAME = 253;

/** Whether raw is a Kubernetes pod name. */
export function isPodName(raw: unknown): raw is string {
  return (
    typeof raw === 'string' && raw.length > 0 && raw.length <= MAX_POD_NAME && SUBDOMAIN.test(raw)
  );
}

/** Why raw is refused as a pod name (INVALID_POD_NAME), showing at most 64 characters of it. */
export function podNameRefusal(raw: unknown): string {
  const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 64)) : 'none';
  return `pod name ${shown} is not a Kubernetes pod name (RFC 1123 subdomain: lowercase a-z, 0-9, '-' and '.', at most ${MAX_POD_NAME} characters)`;
}

/** A pod name as the OpenAPI document states it: the same rule as isPodName. */
export const PodName = z.string().min(1).max(MAX_POD_NAME).regex(SUBDOMAIN);

export function parsePodName(raw: unknown): string {
  if (!isPodName(raw)) throw new PkmError('INVALID_POD_NAME', podNameRefusal(raw));
  return raw;
}

// Namespaces are RFC 1123 labels: at most 63 characters, no dots.
const NAMESPACE = new RegExp(`^${LABEL}$`);
export const DEFAULT_NAMESPACE = 'default';

export function parseNamespace(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 63 || !NAMESPACE.test(raw)) {
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 64)) : 'none';
    throw new PkmError(
      'INVALID_NAMESPACE',
      `namespace ${shown} is not a Kubernetes namespace (RFC 1123 label, at most 63 characters)`,
    );
  }
  return raw;
}

/**
 * A pod's identity in the store: "namespace/name", or the plain name in the default namespace,
 * so that the names pods had before namespaces counted (and requests without one) stay valid.
 * A StatefulSet pod recreated under the same name is the same identity.
 */
export function podIdentity(namespace: string | undefined, name: string): string {
  return namespace === undefined || namespace === DEFAULT_NAMESPACE ? name : `${namespace}/${name}`;
}

/**
 * The API path of one of a pod's routes, relative to the server's URL: the plain route for the
 * default namespace, the namespaced one otherwise (DESIGN.md "HTTP API").
 */
export function podPath(namespace: string, name: string, route: PodRoute = 'keys'): string {
  const [plain, namespaced] = podTemplates(route);
  return namespace === DEFAULT_NAMESPACE
    ? pathTo(plain, { pod: name })
    : pathTo(namespaced, { namespace, pod: name });
}

/** The namespace an identity belongs to. */
export function namespaceOf(identity: string): string {
  const slash = identity.indexOf('/');
  return slash < 0 ? DEFAULT_NAMESPACE : identity.slice(0, slash);
}
