package org.egressproxy.match;

/** A host pattern or CIDR that cannot be compiled; the message says what to write instead. */
public final class PatternException extends Exception {
  private static final long serialVersionUID = 1L;
  private final String unsetVariable;

  public PatternException(String message) {
    this(message, null);
  }

  PatternException(String message, String unsetVariable) {
    super(message, null, false, false);
    this.unsetVariable = unsetVariable;
  }

  /** The variable the pattern uses that has no value, when that is the only problem. */
  public String unsetVariable() {
    return unsetVariable;
  }
}
