package org.egressproxy.config;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Every problem found while loading configuration and catalogs, in the order found, so that an
 * operator sees all of them in one run. Printed as {@code FILE:LINE: message}.
 */
public final class Problems {
  /** One problem. */
  public record Problem(SourceRef where, boolean error, String message) {
    @Override
    public String toString() {
      return where + ": " + (error ? "" : "warning: ") + message;
    }
  }

  private final List<Problem> all = new ArrayList<>();

  public void error(SourceRef where, String message) {
    add(new Problem(where, true, oneLine(message)));
  }

  public void warning(SourceRef where, String message) {
    add(new Problem(where, false, oneLine(message)));
  }

  /** Each problem once, even when a catalog is compiled for several sources. */
  private void add(Problem p) {
    if (!all.contains(p)) {
      all.add(p);
    }
  }

  /**
   * A problem prints as one {@code FILE:LINE: message} line: control characters in a message
   * (a quoted value, a YAML parser's text) are written as escapes.
   */
  static String oneLine(String message) {
    StringBuilder sb = null;
    for (int i = 0; i < message.length(); i++) {
      char c = message.charAt(i);
      if (c < 0x20 || c == 0x7f) {
        if (sb == null) {
          sb = new StringBuilder(message.length() + 8).append(message, 0, i);
        }
        sb.append(switch (c) {
          case '\n' -> "\\n";
          case '\r' -> "\\r";
          case '\t' -> "\\t";
          default -> String.format("\\u%04x", (int) c);
        });
      } else if (sb != null) {
        sb.append(c);
      }
    }
    return sb == null ? message : sb.toString();
  }

  public boolean hasErrors() {
    return all.stream().anyMatch(Problem::error);
  }

  public List<Problem> all() {
    return Collections.unmodifiableList(all);
  }

  public List<Problem> errors() {
    return all.stream().filter(Problem::error).toList();
  }

  public List<Problem> warnings() {
    return all.stream().filter(p -> !p.error()).toList();
  }
}
