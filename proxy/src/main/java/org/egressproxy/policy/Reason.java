package org.egressproxy.policy;

/** Why a decision went the way it did; {@link #id()} is what logs and metrics carry. */
public enum Reason {
  /** An allow rule matched. */
  RULE("rule"),
  /** No rule matched: default deny. */
  NO_MATCH("no-match"),
  /** A deny rule matched (a deny beats any allow). */
  DENY_RULE("deny-rule"),
  /** The destination (literal or resolved) is private, loopback, link-local, ... */
  PRIVATE_DESTINATION("private-destination"),
  /** The host is not a valid DNS name nor an IP literal. */
  INVALID_HOST("invalid-host");

  private final String id;

  Reason(String id) {
    this.id = id;
  }

  public String id() {
    return id;
  }
}
