import { describe, expect, it } from 'vitest';
import { InvalidServiceNameError } from '../src/index.js';
import { parseServiceUrl } from '../src/transport/service-url.js';

describe('parseServiceUrl', () => {
  it.each([
    ['http://users/v1/me', 'http:', 'users', '/v1/me'],
    ['HTTPS://Users.Internal:8443/a?b=1#frag', 'https:', 'users.internal', '/a?b=1'],
    ['http://users', 'http:', 'users', '/'],
    ['http://users?x=1', 'http:', 'users', '/?x=1'],
    ['http://users/a%20b', 'http:', 'users', '/a%20b'],
  ])('%s', (raw, scheme, service, rest) => {
    expect(parseServiceUrl(raw)).toEqual({ scheme, service, rest });
  });

  it.each(['ftp://users/x', 'users/x', '/x', ''])('refuses %j as not an absolute http(s) URL', (raw) => {
    expect(() => parseServiceUrl(raw)).toThrow(TypeError);
  });

  it('refuses credentials', () => {
    expect(() => parseServiceUrl('http://u:p@users/x')).toThrow('credentials');
  });

  it.each(['http://us ers/x', 'http://us%65rs/x', 'http://a..b/x', 'http://users\r\n/x', 'http://[::1]/x'])(
    'refuses the hostile or non-service host in %j',
    (raw) => {
      expect(() => parseServiceUrl(raw)).toThrow(InvalidServiceNameError);
    },
  );
});
