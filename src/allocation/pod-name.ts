import { PkmError } from '../errors.js';

// Kubernetes object names for pods: an RFC 1123 DNS subdomain, at most 253 characters,
// lowercase alphanumerics, '-' and '.', each label starting and ending alphanumeric (as apimachinery's IsDNS1123Subdomain).
const LABEL = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
const SUBDOMAIN = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
export const MAX_POD_NAME = 253;

export function parsePodName(raw: unknown): string {
  if (
    typeof raw !== 'string' ||
    raw.length === 0 ||
    raw.length > MAX_POD_NAME ||
    !SUBDOMAIN.test(raw)
  ) {
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 64)) : 'none';
    throw new PkmError(
      'INVALID_POD_NAME',
      `pod name ${shown} is not a Kubernetes pod name (RFC 1123 subdomain: lowercase a-z, 0-9, '-' and '.', at most ${MAX_POD_NAME} characters)`,
    );
  }
  return raw;
}
