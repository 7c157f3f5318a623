import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { shortCutIsIPv6 } from './ipv6-check';

describe('shortCutIsIPv6', () => {
  it('answers net.isIPv6 as Node does, for addresses with and without a colon', () => {
    const inputs = [
      '127.0.0.1',
      'localhost',
      'scheduler.example.com',
      '',
      '::1',
      '::',
      'fe80::1',
      'fe80::1%eth0',
      '::ffff:10.0.0.1',
      '2001:db8::8a2e:370:7334',
      'a:b',
      '1:2:3',
      'host:7411',
      '[::1]',
    ];
    const before = inputs.map((i) => net.isIPv6(i));
    shortCutIsIPv6();
    assert.deepEqual(
      inputs.map((i) => net.isIPv6(i)),
      before,
    );
    assert.equal(before.filter(Boolean).length, 6, 'the inputs hold IPv6 addresses and others');
  });
});
