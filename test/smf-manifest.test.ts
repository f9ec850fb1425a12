// The SMF manifest of the agent (smf/sled-agent/manifest.xml): well-formed XML (checked here by a
// small parser: there is no svccfg, and no DTD validation, on a Linux build machine), naming the
// installed `sled-agent run <config>` as its start method, with the paths docs/operations.md
// installs to; and the package carries what installing it on a sled needs.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
}

const NAME = '[A-Za-z_:][-A-Za-z0-9_.:]*';
const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/g;

/** Throws, naming the line, unless `text` is a well-formed XML document; its root element. */
function parseXml(text: string): XmlElement {
  let at = 0;
  const fail = (why: string): never => {
    throw new Error(`line ${text.slice(0, at).split('\n').length}: ${why}`);
  };
  const checkText = (s: string) => {
    if (s.replace(ENTITY, '').includes('&')) fail(`an "&" that is not an entity in ${JSON.stringify(s.trim().slice(0, 40))}`);
  };
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  if (text.startsWith('<?xml')) {
    const end = text.indexOf('?>');
    if (end < 0) fail('unterminated XML declaration');
    at = end + 2;
  }
  while (at < text.length) {
    const lt = text.indexOf('<', at);
    const chunk = text.slice(at, lt < 0 ? text.length : lt);
    if (stack.length === 0 && chunk.trim() !== '') fail('text outside the root element');
    checkText(chunk);
    if (lt < 0) break;
    at = lt;
    if (text.startsWith('<!--', at)) {
      const end = text.indexOf('-->', at + 4);
      if (end < 0) fail('unterminated comment');
      const body = text.slice(at + 4, end);
      if (body.includes('--') || body.endsWith('-')) fail('"--" inside a comment');
      at = end + 3;
    } else if (text.startsWith('<!DOCTYPE', at)) {
      if (root !== null || stack.length > 0) fail('DOCTYPE after the root element');
      const end = text.indexOf('>', at);
      if (end < 0 || text.slice(at, end).includes('[')) fail('DOCTYPE with an internal subset, or unterminated');
      at = end + 1;
    } else if (text.startsWith('</', at)) {
      const m = new RegExp(`^</(${NAME})\\s*>`).exec(text.slice(at));
      if (!m) fail('malformed end tag');
      const open = stack.pop();
      if (open?.name !== m![1]) fail(`</${m![1]}> closes <${open?.name ?? 'nothing'}>`);
      at += m![0].length;
    } else {
      const m = new RegExp(`^<(${NAME})((?:\\s+${NAME}\\s*=\\s*(?:'[^'<]*'|"[^"<]*"))*)\\s*(/?)>`).exec(text.slice(at));
      if (!m) fail(`malformed start tag ${JSON.stringify(text.slice(at, at + 40))}`);
      const attrs: Record<string, string> = {};
      for (const a of m![2]!.matchAll(new RegExp(`(${NAME})\\s*=\\s*(?:'([^']*)'|"([^"]*)")`, 'g'))) {
        if (a[1]! in attrs) fail(`attribute ${a[1]} given twice`);
        const value = a[2] ?? a[3]!;
        checkText(value);
        attrs[a[1]!] = value.replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&apos;', "'").replaceAll('&quot;', '"');
      }
      const el: XmlElement = { name: m![1]!, attrs, children: [] };
      if (stack.length > 0) stack.at(-1)!.children.push(el);
      else if (root === null) root = el;
      else fail('a second root element');
      if (m![3] !== '/') stack.push(el);
      at += m![0].length;
    }
  }
  if (stack.length > 0) fail(`<${stack.at(-1)!.name}> is not closed`);
  if (root === null) fail('no root element');
  return root!;
}

const all = (el: XmlElement, name: string): XmlElement[] =>
  [...(el.name === name ? [el] : []), ...el.children.flatMap((c) => all(c, name))];

describe('the SMF manifest', () => {
  const text = readFileSync('smf/sled-agent/manifest.xml', 'utf8');
  const root = parseXml(text);
  const service = all(root, 'service')[0]!;
  const propval = (pg: string, name: string) =>
    all(service, 'property_group').find((g) => g.attrs.name === pg)?.children.find((p) => p.name === 'propval' && p.attrs.name === name)?.attrs;

  it('is well-formed XML with the service_bundle DTD', () => {
    expect(text).toMatch(/^<\?xml version="1.0"\?>\n<!DOCTYPE service_bundle SYSTEM "\/usr\/share\/lib\/xml\/dtd\/service_bundle.dtd.1">/);
    expect(root).toMatchObject({ name: 'service_bundle', attrs: { type: 'manifest', name: 'sled-agent' } });
    expect(service.attrs).toEqual({ name: 'system/illumos/sled-agent', type: 'service', version: '1' });
  });

  it('starts the installed `sled-agent run <config>` in the foreground and stops it with SIGTERM', () => {
    const methods = Object.fromEntries(all(service, 'exec_method').map((m) => [m.attrs.name, m.attrs]));
    expect(methods.start?.exec).toBe('%{config/program} run %{config/file}');
    expect(methods.stop?.exec).toBe(':kill');
    expect(propval('startd', 'duration')?.value).toBe('child');
    const program = propval('config', 'program')?.value;
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string; bin: Record<string, string> };
    // npm links each bin under <prefix>/bin by its name.
    expect(program).toBe(`/opt/oxide/sled-agent-ts/bin/${Object.keys(pkg.bin)[0]}`);
    expect(Object.keys(pkg.bin)).toEqual(['sled-agent']);
    expect(propval('config', 'file')?.value).toBe('/etc/opt/oxide/sled-agent/config.toml');
    expect(all(service, 'create_default_instance')[0]?.attrs.enabled).toBe('false');
  });

  it('uses the paths the operations guide installs to', () => {
    const guide = readFileSync('docs/operations.md', 'utf8');
    expect(guide).toContain('--prefix /opt/oxide/sled-agent-ts');
    expect(guide).toContain(propval('config', 'file')!.value);
    expect(guide).toContain('svccfg import');
  });

  it('tells a malformed document from a well-formed one', () => {
    expect(() => parseXml('<a><b></a></b>')).toThrow(/closes/);
    expect(() => parseXml("<a x='1' x='2'/>")).toThrow(/twice/);
    expect(() => parseXml('<a>fish & chips</a>')).toThrow(/entity/);
    expect(() => parseXml('<a><!-- npm --prefix --></a>')).toThrow(/inside a comment/);
    expect(() => parseXml('<a/><b/>')).toThrow(/second root/);
    expect(parseXml("<a x='&amp;'>1 &lt; 2<!-- ok --><b/></a>")).toEqual({ name: 'a', attrs: { x: '&' }, children: [{ name: 'b', attrs: {}, children: [] }] });
  });
});

describe('the package', () => {
  it('ships what installing it on a sled needs: the built CLI, the addon source and its build file, the manifest', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { files?: string[]; gypfile?: boolean; bin: Record<string, string> };
    expect(pkg.files).toEqual(expect.arrayContaining(['dist/', 'native/', 'binding.gyp', 'smf/', 'config/', 'docs/']));
    // The addon is built on install (node-gyp, from binding.gyp), not shipped built.
    expect(pkg.gypfile).toBe(true);
    expect(Object.values(pkg.bin).every((p) => p.startsWith('dist/'))).toBe(true);
  });
});
