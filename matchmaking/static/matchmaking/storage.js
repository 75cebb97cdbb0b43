// A tab's searching ticket and chosen queue, kept in sessionStorage so that a reload resumes
// them; storage that is off (private mode, a policy) is never an error.

export function remember(key, value) {
  try {
    if (value) window.sessionStorage.setItem(key, value);
    else window.sessionStorage.removeItem(key);
  } catch {
    // Storage off (private mode, a policy): the page's config still resumes a search.
  }
}

export function recall(key) {
  try {
    return window.sessionStorage.getItem(key);
  } catch {
    return null;
  }
}
