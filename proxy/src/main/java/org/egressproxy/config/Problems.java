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
    add(new Problem(where, true, message));
  }

  public void warning(SourceRef where, String message) {
    add(new Problem(where, false, message));
  }

  /** Each problem once, even when a catalog is compiled for several sources. */
  private void add(Problem p) {
    if (!all.contains(p)) {
      all.add(p);
    }
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
