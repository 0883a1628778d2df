/**
 * A small strict XML parser for the demo's SVG, so the tests can say "well-formed" without a dependency: one
 * root, balanced tags, quoted and unique attributes, only the five predefined entities and character references,
 * no raw `<` or `&` in text. It throws on the first error, with its offset. (No DTDs or CDATA: the chart has none,
 * and any in it is then an error.) The browser test loads the same file in Chromium's XML parser as well.
 */
export interface XmlElement {
  readonly name: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly children: readonly XmlElement[];
  /** The element's own text, entities decoded. */
  readonly text: string;
}

const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(raw: string, at: number): string {
  if (raw.includes('<')) throw new SyntaxError(`raw '<' in text or attribute near ${at}`);
  return raw.replace(/&([^;]*);?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) throw new SyntaxError(`unterminated entity near ${at}`);
    if (ref in ENTITIES) return ENTITIES[ref]!;
    const code = /^#x[0-9a-f]+$/i.test(ref) ? Number.parseInt(ref.slice(2), 16) : /^#[0-9]+$/.test(ref) ? Number(ref.slice(1)) : NaN;
    if (!Number.isFinite(code)) throw new SyntaxError(`unknown entity &${ref}; near ${at}`);
    return String.fromCodePoint(code);
  });
}

/** Parses `source` into its root element, or throws a SyntaxError. */
export function parseXml(source: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new SyntaxError(`${why} at offset ${i}: ${JSON.stringify(source.slice(i, i + 40))}`);
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(source);
    if (m === null) fail('expected a name');
    i += m![0].length;
    return m![0];
  };
  const space = (): void => void (i += /^\s*/.exec(source.slice(i))![0].length);
  const misc = (): void => {
    for (;;) {
      space();
      if (source.startsWith('<!--', i)) {
        const end = source.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (source.startsWith('<?', i)) {
        const end = source.indexOf('?>', i);
        if (end < 0) fail('unterminated processing instruction');
        i = end + 2;
      } else return;
    }
  };
  const element = (): XmlElement => {
    if (source[i] !== '<') fail("expected '<'");
    i++;
    const tag = name();
    const attributes: Record<string, string> = {};
    for (;;) {
      const before = i;
      space();
      if (source.startsWith('/>', i)) {
        i += 2;
        return { name: tag, attributes, children: [], text: '' };
      }
      if (source[i] === '>') break;
      if (i === before) fail('expected space before an attribute');
      const key = name();
      if (key in attributes) fail(`attribute ${key} repeated`);
      space();
      if (source[i] !== '=') fail("expected '='");
      i++;
      space();
      const quote = source[i];
      if (quote !== '"' && quote !== "'") fail('expected a quoted value');
      const end = source.indexOf(quote!, i + 1);
      if (end < 0) fail('unterminated attribute value');
      attributes[key] = decode(source.slice(i + 1, end), i);
      i = end + 1;
    }
    i++; // '>'
    const children: XmlElement[] = [];
    let text = '';
    for (;;) {
      const next = source.indexOf('<', i);
      if (next < 0) fail(`unclosed <${tag}>`);
      text += decode(source.slice(i, next), i);
      i = next;
      if (source.startsWith('</', i)) {
        i += 2;
        if (name() !== tag) fail(`mismatched closing tag for <${tag}>`);
        space();
        if (source[i] !== '>') fail("expected '>'");
        i++;
        return { name: tag, attributes, children, text };
      }
      if (source.startsWith('<!--', i) || source.startsWith('<?', i)) misc();
      else children.push(element());
    }
  };
  misc();
  const root = element();
  misc();
  if (i !== source.length) fail('content after the root element');
  return root;
}

/** Every element under `root` (itself included), depth first. */
export function allElements(root: XmlElement): XmlElement[] {
  return [root, ...root.children.flatMap(allElements)];
}

/** All text under `root`, one string per element that has any. */
export function allText(root: XmlElement): string[] {
  return allElements(root)
    .map((e) => e.text.trim())
    .filter((t) => t !== '');
}
