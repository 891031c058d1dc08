package org.egressproxy.http;

/** {@code host:port} or {@code [v6]:port} as in a CONNECT request or an absolute URI. */
public record Authority(String host, int port) {

  /** Parses {@code text}; {@code defaultPort} applies when it has none (-1: a port is required). */
  public static Authority parse(String text, int defaultPort) {
    if (text == null || text.isEmpty() || text.indexOf('@') >= 0) {
      return null; // userinfo is never accepted: "allowed@evil" must not be read as either
    }
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c <= 0x20 || c >= 0x7f) {
        // On the wire a host is ASCII (IDNs as punycode): anything else - controls, spaces,
        // UTF-8 read as Latin-1 - would be decided as one name and mean another to the origin.
        return null;
      }
    }
    String host;
    String port = null;
    if (text.startsWith("[")) {
      int close = text.indexOf(']');
      if (close < 0) {
        return null;
      }
      host = text.substring(0, close + 1);
      String rest = text.substring(close + 1);
      if (!rest.isEmpty()) {
        if (!rest.startsWith(":")) {
          return null;
        }
        port = rest.substring(1);
      }
    } else {
      int colon = text.indexOf(':');
      if (colon >= 0) {
        if (text.indexOf(':', colon + 1) >= 0) {
          return null; // a bare IPv6 literal needs brackets in an authority
        }
        host = text.substring(0, colon);
        port = text.substring(colon + 1);
      } else {
        host = text;
      }
    }
    int p = defaultPort;
    if (port != null) {
      if (port.isEmpty() || port.length() > 5 || !port.chars().allMatch(c -> c >= '0' && c <= '9')) {
        return null;
      }
      p = Integer.parseInt(port);
    }
    if (p < 1 || p > 65535 || host.isEmpty()) {
      return null;
    }
    return new Authority(host, p);
  }
}
