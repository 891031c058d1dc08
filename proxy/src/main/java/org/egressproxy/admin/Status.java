package org.egressproxy.admin;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Sources;

/** What the admin endpoint shows about the running proxy. */
public interface Status {
  /** Listeners bound, a policy loaded, not stopping. */
  boolean ready();

  /** The policies deciding now: the top-level one and one per source. */
  Sources sources();

  /** The top-level policy deciding now. */
  default CompiledPolicy policy() {
    return sources().base();
  }

  /** The last reload, or {@code null} when there was none. */
  Reload lastReload();

  /** Open client connections per listener. */
  Map<String, Integer> active();

  /** The most denied destinations, most first (see TopDenied). */
  List<Map.Entry<String, Long>> topDenied(int n);

  /**
   * One reload's outcome: {@code errors} (a failed reload) and {@code warnings} (a reload that
   * worked but has something to say, such as keys that need a restart), as FILE:LINE: message
   * lines.
   */
  record Reload(Instant at, String trigger, boolean ok, List<String> errors,
      List<String> warnings) {}
}
