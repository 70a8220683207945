import { encodeCommand, parseReply, RespError } from './resp';

describe('RESP encoding', () => {
  it('encodes a command as an array of bulk strings, counting UTF-8 bytes', () => {
    expect(encodeCommand(['SET', 'k', 'é']).toString()).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
  });

  it('parses every reply type', () => {
    const buf = Buffer.from('+OK\r\n-ERR bad\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n');
    const values = [];
    let offset = 0;
    for (;;) {
      const reply = parseReply(buf, offset);
      if (!reply) break;
      values.push(reply.value);
      offset = reply.next;
    }
    expect(offset).toBe(buf.length);
    expect(values).toEqual(['OK', new RespError('ERR bad'), 42, 'abc', null, ['a', 1]]);
  });

  it('reports an incomplete reply as undefined', () => {
    expect(parseReply(Buffer.from('$5\r\nab'))).toBeUndefined();
    expect(parseReply(Buffer.from('*2\r\n:1\r\n'))).toBeUndefined();
    expect(parseReply(Buffer.from('+OK'))).toBeUndefined();
  });
});
