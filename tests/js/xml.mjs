// A tiny namespace-aware XML reader for the node tests of the page's pure modules: elements with what the page
// reads of DOM elements (localName, namespaceURI, children, getAttribute, hasAttribute, textContent,
// getElementsByTagName). Enough for stanzas as the docs show them; not a general XML parser (no CDATA, no DTD).

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const decode = (text) => text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (_, name) => {
  if (name[0] === "#") return String.fromCodePoint(name[1] === "x" ? parseInt(name.slice(2), 16) : Number(name.slice(1)));
  if (!(name in ENTITIES)) throw new Error(`unknown entity &${name};`);
  return ENTITIES[name];
});

class Element {
  constructor(name, attributes, parent) {
    this.nodeName = name;
    this.localName = name.includes(":") ? name.split(":")[1] : name;
    this.attributes = attributes; // as written, xmlns ones included
    this.parent = parent;
    this.children = [];
    this.nodes = []; // elements and text, in order
    const prefix = name.includes(":") ? name.split(":")[0] : null;
    this.namespaceURI = this.lookup(prefix);
  }

  lookup(prefix) {
    const key = prefix ? `xmlns:${prefix}` : "xmlns";
    for (let e = this; e; e = e.parent) if (key in e.attributes) return e.attributes[key];
    if (prefix) throw new Error(`undeclared prefix ${prefix}`);
    return null;
  }

  getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; }
  hasAttribute(name) { return name in this.attributes; }
  get textContent() { return this.nodes.map((n) => (typeof n === "string" ? n : n.textContent)).join(""); }
  getElementsByTagName(name) {
    const found = [];
    const walk = (e) => e.children.forEach((c) => { if (c.nodeName === name) found.push(c); walk(c); });
    walk(this);
    return found;
  }
}

export function parseXml(xml) {
  const token = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<\/([^\s>]+)\s*>|<([^\s/>]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  let root = null;
  let current = null;
  for (const [whole, close, open, attrs, selfClosing, text] of xml.matchAll(token)) {
    if (whole.startsWith("<!--") || whole.startsWith("<?")) continue;
    if (text !== undefined) {
      if (current) current.nodes.push(decode(text));
      else if (text.trim()) throw new Error("text outside the root element");
    } else if (close !== undefined) {
      if (!current || current.nodeName !== close) throw new Error(`unexpected </${close}>`);
      current = current.parent;
    } else {
      const attributes = {};
      for (const [, name, double, single] of attrs.matchAll(/([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        attributes[name] = decode(double ?? single);
      }
      const element = new Element(open, attributes, current);
      if (current) { current.children.push(element); current.nodes.push(element); } else if (root) {
        throw new Error("a second root element");
      } else root = element;
      if (!selfClosing) current = element;
    }
  }
  if (!root || current) throw new Error("unclosed element");
  return root;
}
