package org.egressproxy.match;

import java.util.Locale;

/** What a connection carries, as the proxy sees it: TLS (CONNECT tunnels, tls-sni) or plain HTTP. */
public enum Protocol {
  TLS,
  HTTP;

  /** One bit per protocol, for rules that accept a set of them. */
  public int bit() {
    return 1 << ordinal();
  }

  public static final int ANY = TLS.bit() | HTTP.bit();

  /** The lower-case name used in configuration and logs: {@code tls}, {@code http}. */
  public String id() {
    return name().toLowerCase(Locale.ROOT);
  }

  /** A bit set of protocols as text: {@code tls}, {@code http} or {@code tls,http}. */
  public static String describe(int bits) {
    StringBuilder sb = new StringBuilder();
    for (Protocol p : values()) {
      if ((bits & p.bit()) != 0) {
        sb.append(sb.length() == 0 ? "" : ",").append(p.id());
      }
    }
    return sb.toString();
  }

  /** {@code tls}, {@code http}, or {@code null}. */
  public static Protocol fromId(String id) {
    for (Protocol p : values()) {
      if (p.id().equals(id)) {
        return p;
      }
    }
    return null;
  }
}
