import { escapeHtml, html, raw, scriptJson, seg } from './html';

describe('html', () => {
  it('escapes every interpolated value, in text and in attributes', () => {
    const hostile = `"><script>alert('x')</script>&\``;
    expect(html`<a title="${hostile}">${hostile}</a>`.value).toBe(
      '<a title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&#96;">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&#96;</a>',
    );
    expect(escapeHtml('a & b < c')).toBe('a &amp; b &lt; c');
  });

  it('nests safe fragments and arrays without escaping them twice, and drops null, undefined and false', () => {
    const items = ['<1>', '<2>'].map((v) => html`<li>${v}</li>`);
    expect(html`<ul>${items}</ul>${null}${undefined}${false}${0}`.value).toBe('<ul><li>&lt;1&gt;</li><li>&lt;2&gt;</li></ul>0');
    expect(html`${raw('<b>')}`.value).toBe('<b>');
  });

  it('keeps inline script data from closing the script element', () => {
    expect(scriptJson({ id: '</script><script>x()</script>' }).value).toBe('{"id":"\\u003c/script>\\u003cscript>x()\\u003c/script>"}');
  });

  it('encodes path segments', () => {
    expect(seg('a/b?c#d e')).toBe('a%2Fb%3Fc%23d%20e');
  });
});
