/**
 * Where a JSON text is not valid, said without quoting it: a config file may hold a private key or a token,
 * and V8's own JSON.parse messages quote the text around the fault.
 */

/**
 * Where `json` (which JSON.parse refused with `error`) is not valid, as `not valid JSON: ... at line L, column C`,
 * never quoting the text. The position is V8's `at position N` when its message has one, else where
 * {@link syntaxErrorAt} finds the fault (V8's `Unexpected token` messages give a snippet instead of a position).
 */
export function jsonFault(json: string, error: unknown): string {
  const message = error instanceof Error ? error.message : '';
  const stated = /\bat position (\d+)\b/.exec(message);
  let at = stated === null ? undefined : Number(stated[1]);
  if (at === undefined || !(at <= json.length)) at = syntaxErrorAt(json);
  if (at === undefined) return 'not valid JSON';
  let line = 1;
  let lineStart = 0;
  for (let i = json.indexOf('\n'); i !== -1 && i < at; i = json.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  const where = `line ${line}, column ${at - lineStart + 1}`;
  return at >= json.length ? `not valid JSON: the text ends before the JSON does (${where})` : `not valid JSON: a syntax error at ${where}`;
}

/**
 * The index of the first character where `s` leaves JSON's grammar (RFC 8259, as JSON.parse reads it), or
 * `s.length` when the text ends too early; undefined when no fault is found (or the nesting is too deep to walk).
 */
function syntaxErrorAt(s: string): number | undefined {
  let i = 0;
  const fault = (): never => {
    throw new JsonFault(i);
  };
  const space = (): void => {
    for (let c = s.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = s.charCodeAt(++i));
  };
  const expect = (char: string): void => {
    if (s[i] !== char) fault();
    i++;
  };
  const digits = (): void => {
    if (!(s[i]! >= '0' && s[i]! <= '9')) fault();
    while (s[i]! >= '0' && s[i]! <= '9') i++;
  };
  const string = (): void => {
    expect('"');
    for (;;) {
      if (i >= s.length) fault();
      const c = s.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fault();
      if (c !== 0x5c) {
        i++;
        continue;
      }
      i++;
      if (s[i] === 'u') {
        i++;
        for (let k = 0; k < 4; k++, i++) if (!/^[0-9A-Fa-f]$/.test(s[i] ?? '')) fault();
      } else if (s[i] !== undefined && '"\\/bfnrt'.includes(s[i]!)) i++;
      else fault();
    }
  };
  const value = (): void => {
    space();
    const c = s[i];
    if (c === '{') {
      i++;
      space();
      if (s[i] === '}') return void i++;
      for (;;) {
        space();
        string();
        space();
        expect(':');
        value();
        space();
        if (s[i] === ',') i++;
        else return expect('}');
      }
    }
    if (c === '[') {
      i++;
      space();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        space();
        if (s[i] === ',') i++;
        else return expect(']');
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      if (c === '-') i++;
      if (s[i] === '0') i++;
      else digits();
      if (s[i] === '.') {
        i++;
        digits();
      }
      if (s[i] === 'e' || s[i] === 'E') {
        i++;
        if (s[i] === '+' || s[i] === '-') i++;
        digits();
      }
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (c !== word[0]) continue;
      for (const char of word) expect(char);
      return;
    }
    fault();
  };
  try {
    value();
    space();
    if (i < s.length) fault();
    return undefined;
  } catch (error) {
    if (error instanceof JsonFault) return Math.min(error.at, s.length);
    return undefined; // a RangeError: nested deeper than the stack goes
  }
}

class JsonFault {
  constructor(readonly at: number) {}
}
