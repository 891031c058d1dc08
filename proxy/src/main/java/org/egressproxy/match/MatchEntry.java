package org.egressproxy.match;

/**
 * What a trie stores at a pattern's end: the policy's rule. The trie only needs to know whether
 * it denies and whether it applies to a port and a protocol; everything else is the policy's.
 */
public interface MatchEntry {
  boolean isDeny();

  /** {@code protocol} is a bit the policy defines (one bit per protocol). */
  boolean accepts(int port, int protocol);

  /**
   * Of two matches, the one that decides: a deny beats an allow; between equals the candidate,
   * which callers pass in order of increasing specificity, wins.
   */
  static <E extends MatchEntry> E better(E current, E candidate) {
    if (candidate == null) {
      return current;
    }
    if (current == null) {
      return candidate;
    }
    if (current.isDeny() && !candidate.isDeny()) {
      return current;
    }
    return candidate;
  }

  /** The deciding entry among those stored at one place: the first deny, else the first allow. */
  static <E extends MatchEntry> E pick(E[] entries, int port, int protocol) {
    E allow = null;
    for (E e : entries) {
      if (e.accepts(port, protocol)) {
        if (e.isDeny()) {
          return e;
        }
        if (allow == null) {
          allow = e;
        }
      }
    }
    return allow;
  }
}
