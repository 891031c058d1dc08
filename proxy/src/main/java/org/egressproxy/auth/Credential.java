package org.egressproxy.auth;

/**
 * What a client proved with its {@code Proxy-Authorization} header: nothing, a user (Basic, the
 * password verified), a token (Bearer, its hash known), or an invalid attempt ({@code name} is
 * then the user it claimed, if any, for the log).
 */
public record Credential(Kind kind, String name) {
  public enum Kind {
    NONE,
    USER,
    TOKEN,
    INVALID
  }

  public static final Credential NONE = new Credential(Kind.NONE, null);

  public static final Credential INVALID = new Credential(Kind.INVALID, null);

  /** A user or token whose secret checked out. */
  public boolean proven() {
    return kind == Kind.USER || kind == Kind.TOKEN;
  }
}
