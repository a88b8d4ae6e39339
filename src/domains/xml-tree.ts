/**
 * XML as an ordered tree, read and written with fast-xml-parser: domain XML must come back out
 * the way it went in — every element and attribute tskvm does not know kept, in its order — so
 * the domain code works on this tree rather than on a lossy object mapping. Whitespace between
 * elements is formatting and is re-indented on output; text inside text-only elements is kept
 * byte for byte. Entities are decoded here (the five XML ones and character references), and a
 * DOCTYPE is refused: domain XML never has one, and entity definitions are an attack surface.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { UsageError } from '../errors.js';

export interface XmlElement {
  kind: 'element';
  name: string;
  /** In document order (object keys keep insertion order; XML attribute names never look like integers). */
  attrs: Record<string, string>;
  children: XmlNode[];
}
export interface XmlText {
  kind: 'text';
  text: string;
}
export interface XmlComment {
  kind: 'comment';
  text: string;
}
export type XmlNode = XmlElement | XmlText | XmlComment;

/** One item of fast-xml-parser's preserveOrder output: a single tag key (or #text/#comment) plus ':@'. */
type OrderedItem = { [key: string]: OrderedItem[] | string | Record<string, string> };

const TEXT_KEY = '#text';
const COMMENT_KEY = '#comment';
const CDATA_KEY = '#cdata';
const ATTRS_KEY = ':@';

const PARSER_OPTIONS = {
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  commentPropName: COMMENT_KEY,
  // CDATA is text that is not entity-decoded; it comes back out as escaped text.
  cdataPropName: CDATA_KEY,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  // Entities are decoded by decodeEntities(), in one pass, so '&amp;#65;' stays '&#65;'.
  processEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  allowBooleanAttributes: false,
} as const;

const BUILDER_OPTIONS = {
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  commentPropName: COMMENT_KEY,
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
  processEntities: true,
} as const;

/** The largest domain XML accepted (libvirt's own limit for a domain definition is 10 MiB). */
export const XML_MAX_BYTES = 10 * 2 ** 20;

/** Parses a document and returns its root element; `what` names the source in errors. */
export function parseXml(text: string, what: string): XmlElement {
  if (Buffer.byteLength(text) > XML_MAX_BYTES)
    throw new UsageError(`${what}: larger than ${XML_MAX_BYTES} bytes: this is not a domain definition`);
  if (/<!DOCTYPE/i.test(text))
    throw new UsageError(`${what}: a DOCTYPE is not allowed in domain XML: remove the <!DOCTYPE ...> declaration`);
  const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (valid !== true) {
    throw new UsageError(`${what}: malformed XML at line ${valid.err.line}, column ${valid.err.col}: ${valid.err.msg}`);
  }
  const items = new XMLParser(PARSER_OPTIONS).parse(text) as OrderedItem[];
  const roots = items.map((item) => fromOrdered(item, what)).filter((node): node is XmlElement => node.kind === 'element');
  if (roots.length !== 1) throw new UsageError(`${what}: expected one root element, found ${roots.length}`);
  return roots[0]!;
}

/** Writes an element as a document: two-space indentation, no XML declaration (as libvirt writes). */
export function formatXml(root: XmlElement): string {
  const built = new XMLBuilder(BUILDER_OPTIONS).build([toOrdered(root)]) as string;
  return `${built.replace(/^\n+/, '').trimEnd()}\n`;
}

function fromOrdered(item: OrderedItem, what: string): XmlNode {
  const key = Object.keys(item).find((k) => k !== ATTRS_KEY);
  if (key === undefined) throw new UsageError(`${what}: an empty XML node`);
  const value = item[key];
  if (key === TEXT_KEY) return { kind: 'text', text: decodeEntities(String(value), what) };
  if (key === COMMENT_KEY || key === CDATA_KEY) {
    const inner = Array.isArray(value) ? value.map((v) => String(v[TEXT_KEY] ?? '')).join('') : '';
    return { kind: key === COMMENT_KEY ? 'comment' : 'text', text: inner };
  }
  const rawAttrs = (item[ATTRS_KEY] ?? {}) as Record<string, string>;
  const attrs: Record<string, string> = {};
  for (const [name, v] of Object.entries(rawAttrs)) attrs[name] = decodeEntities(String(v), `${what}: <${key}> attribute ${name}`);
  const children = Array.isArray(value) ? value.map((child) => fromOrdered(child, what)) : [];
  return { kind: 'element', name: key, attrs, children: mergeTexts(children) };
}

/** Adjacent text nodes (a CDATA section next to text, say) become one. */
function mergeTexts(nodes: XmlNode[]): XmlNode[] {
  const out: XmlNode[] = [];
  for (const node of nodes) {
    const last = out[out.length - 1];
    if (node.kind === 'text' && last?.kind === 'text') last.text += node.text;
    else out.push(node);
  }
  return out;
}

function toOrdered(node: XmlNode): OrderedItem {
  if (node.kind === 'text') return { [TEXT_KEY]: node.text };
  if (node.kind === 'comment') return { [COMMENT_KEY]: [{ [TEXT_KEY]: node.text }] };
  const hasElements = node.children.some((c) => c.kind !== 'text');
  // Between elements, whitespace is indentation: the builder writes its own.
  const children = node.children.filter((c) => !(hasElements && c.kind === 'text' && c.text.trim() === ''));
  const item: OrderedItem = { [node.name]: children.map(toOrdered) };
  if (Object.keys(node.attrs).length > 0) item[ATTRS_KEY] = { ...node.attrs };
  return item;
}

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
/** The largest Unicode code point. */
const MAX_CODE_POINT = 0x10ffff;

/** Decodes the five predefined entities and character references; anything else after '&' is an error, as in XML. */
export function decodeEntities(text: string, what: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&([^;&\s]*);?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) throw new UsageError(`${what}: a bare '&' in '${text}': write it as &amp;`);
    const named = PREDEFINED_ENTITIES[ref];
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9a-fA-F]+)|([0-9]+))$/.exec(ref);
    const code = m ? (m[1] !== undefined ? parseInt(m[1], 16) : Number(m[2])) : NaN;
    if (!(code > 0 && code <= MAX_CODE_POINT))
      throw new UsageError(`${what}: unknown entity '&${ref};': XML has only &amp; &lt; &gt; &quot; &apos; and &#N;`);
    return String.fromCodePoint(code);
  });
}

/** Child elements, optionally only those named `name`. */
export function childElements(el: XmlElement, name?: string): XmlElement[] {
  return el.children.filter((c): c is XmlElement => c.kind === 'element' && (name === undefined || c.name === name));
}

/** The text directly inside an element (its text nodes joined). */
export function textOf(el: XmlElement): string {
  return el.children
    .filter((c): c is XmlText => c.kind === 'text')
    .map((c) => c.text)
    .join('');
}

export function element(name: string, attrs: Record<string, string> = {}, children: XmlNode[] = []): XmlElement {
  return { kind: 'element', name, attrs, children };
}

export function textElement(name: string, text: string, attrs: Record<string, string> = {}): XmlElement {
  return element(name, attrs, [{ kind: 'text', text }]);
}

/** Inserts `node` after `after` among el's children (at the start when `after` is absent). */
export function insertAfter(el: XmlElement, after: XmlNode | undefined, node: XmlNode): void {
  const at = after === undefined ? -1 : el.children.indexOf(after);
  el.children.splice(at + 1, 0, node);
}

/** A deep copy. */
export function cloneElement(el: XmlElement): XmlElement {
  return structuredClone(el);
}
