package org.egressproxy.config;

/** Where something was written: a file (or an embedded resource) and a 1-based line. */
public record SourceRef(String file, int line) {
  @Override
  public String toString() {
    return line > 0 ? file + ":" + line : file;
  }
}
