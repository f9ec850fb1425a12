// JSON's \uXXXX escapes can spell half a surrogate pair, which no UTF-8 text can hold. The
// original (serde_json) refuses such a body outright; a string of this kind reaching a URL
// (encodeURIComponent throws) or a file name (written as U+FFFD) must be refused up front instead.

const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Why `text` cannot be encoded as UTF-8 ("a lone UTF-16 surrogate U+D800"), or null when it can.
 * A well-formed pair is one code point to a `u` regex, so only unpaired halves match.
 */
export function unencodableText(text: string): string | null {
  const lone = LONE_SURROGATE.exec(text)?.[0];
  if (lone === undefined) return null;
  return `a lone UTF-16 surrogate U+${lone.charCodeAt(0).toString(16).toUpperCase()}, which has no UTF-8 encoding`;
}
