// A pod's routes as the client, the agent and `pkm release` call them (DESIGN.md "HTTP API").
import { describe, expect, it } from 'vitest';
import { podPath } from '../../src/api/names.js';

describe('podPath', () => {
  it('uses the plain route in the default namespace and the namespaced one elsewhere', () => {
    expect(podPath('default', 'validator-0')).toBe('v1/pods/validator-0/keys');
    expect(podPath('default', 'validator-0', 'heartbeat')).toBe('v1/pods/validator-0/heartbeat');
    expect(podPath('team-b', 'v.1', 'slashing-protection')).toBe(
      'v1/namespaces/team-b/pods/v.1/slashing-protection',
    );
  });
});
