// Small word helpers every page shares. Pure (no DOM), so rules-words.js may use them too.

// A server's phrase as a sentence: "the relay was not ready" -> "The relay was not ready."
// `fallback` stands in when there is no phrase at all.
export function sentence(text, fallback = "") {
  const trimmed = String(text || fallback).trim();
  if (!trimmed) return "";
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
