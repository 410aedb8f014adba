// A pod's routes as the client, the agent and `pkm release` call them (DESIGN.md "HTTP API").
import { describe, expect, it } from 'vitest';
import { podPath } from '../../src/api/names.js';
import { openApiPath, pathTo, podTemplates, ROUTES } from '../../src/api/paths.js';

describe('podPath', () => {
  it('uses the plain route in the default namespace and the namespaced one elsewhere', () => {
    expect(podPath('default', 'validator-0')).toBe('v1/pods/validator-0/keys');
    expect(podPath('default', 'validator-0', 'heartbeat')).toBe('v1/pods/validator-0/heartbeat');
    expect(podPath('team-b', 'v.1', 'slashing-protection')).toBe(
      'v1/namespaces/team-b/pods/v.1/slashing-protection',
    );
  });
});

describe('route templates', () => {
  it('fills a template with URL-encoded values, relative to the server URL', () => {
    expect(pathTo(ROUTES.retireKey, { pubkey: '0xab' })).toBe('v1/keys/0xab/retire');
    expect(pathTo(ROUTES.status, {})).toBe('v1/status');
    expect(pathTo(ROUTES.retireKey, { pubkey: 'a/b' })).toBe('v1/keys/a%2Fb/retire');
  });

  it('writes a template as OpenAPI does', () => {
    expect(openApiPath(ROUTES.retireKey)).toBe('/v1/keys/{pubkey}/retire');
    expect(podTemplates('heartbeat').map(openApiPath)).toEqual([
      '/v1/pods/{pod}/heartbeat',
      '/v1/namespaces/{namespace}/pods/{pod}/heartbeat',
    ]);
  });
});
