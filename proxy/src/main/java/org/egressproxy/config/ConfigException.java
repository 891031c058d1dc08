package org.egressproxy.config;

import java.util.List;
import java.util.stream.Collectors;

/** Configuration or catalogs that cannot be used; carries every problem found. */
public final class ConfigException extends Exception {
  private static final long serialVersionUID = 1L;
  private final transient Problems problems;

  public ConfigException(Problems problems) {
    super(
        problems.errors().stream().map(Problems.Problem::toString).collect(Collectors.joining("\n")),
        null,
        false,
        false);
    this.problems = problems;
  }

  public List<Problems.Problem> errors() {
    return problems.errors();
  }

  public Problems problems() {
    return problems;
  }
}
