package org.egressproxy.match;

/** An IPv4 or IPv6 network: {@code 217.73.63.211/32}, {@code fd00::/8}. */
public record Cidr(IpLiteral network, int prefix) {

  /** True when the text looks like an attempt at a CIDR or an IP literal rather than a name. */
  public static boolean looksLikeCidr(String text) {
    return text.indexOf('/') >= 0 || text.indexOf(':') >= 0 || IpLiteral.parse(text) != null;
  }

  /**
   * Why {@code text} is not a CIDR: a URL, a host with a port or a path (what people paste from
   * a vendor's table) is told to be written as the host alone; anything else gets the forms.
   */
  private static String notACidr(String text) {
    String host = text;
    String what = null;
    int scheme = host.indexOf("://");
    if (scheme > 0) {
      host = host.substring(scheme + 3);
      what = "is a URL";
    }
    int slash = host.indexOf('/');
    if (slash >= 0) {
      what = what != null ? what : "has a path";
      host = host.substring(0, slash);
    }
    boolean port = false;
    int colon = host.indexOf(':');
    if (colon > 0 && colon == host.lastIndexOf(':') && colon < host.length() - 1
        && host.substring(colon + 1).chars().allMatch(c -> c >= '0' && c <= '9')) {
      what = what != null ? what : "has a port";
      host = host.substring(0, colon);
      port = true;
    }
    String name = host.startsWith("*.") ? host.substring(2) : host;
    if (what != null && IpLiteral.parse(host) == null && HostName.normalize(name) != null) {
      return "'" + text + "' " + what + ": a host is matched by its name alone; write '" + host
          + "'" + (port ? " (a rule's ports go in its ports: list)" : "");
    }
    return "'" + text + "' is not a CIDR: write e.g. '10.1.2.0/24' or '2001:db8::/32'"
        + " (IPv4 as four decimal parts)";
  }

  /**
   * Parses {@code a.b.c.d/n} or {@code v6/n}; a bare address means the single host (/32, /128).
   * Host bits must be zero, so that a mistyped prefix is caught rather than silently widened.
   */
  public static Cidr parse(String text) throws PatternException {
    int slash = text.indexOf('/');
    String addr = slash < 0 ? text : text.substring(0, slash);
    IpLiteral ip = IpLiteral.parse(addr);
    if (ip == null) {
      throw new PatternException(notACidr(text));
    }
    int max = addr.indexOf(':') >= 0 ? 128 : 32;
    int prefix = max;
    if (slash >= 0) {
      String p = text.substring(slash + 1);
      if (p.isEmpty() || p.length() > 3 || !p.chars().allMatch(c -> c >= '0' && c <= '9')) {
        throw new PatternException("'" + text + "': prefix length must be a number 0-" + max);
      }
      prefix = Integer.parseInt(p);
      if (prefix > max) {
        throw new PatternException("'" + text + "': prefix length must be 0-" + max);
      }
    }
    if (ip.isIpv4() && addr.indexOf(':') >= 0) {
      // ::ffff:a.b.c.d/n is an IPv4 network written in IPv6; its prefix counts 128 bits.
      prefix -= 96;
      if (prefix < 0) {
        throw new PatternException(
            "'" + text + "' covers more than the IPv4-mapped range; write an IPv4 CIDR");
      }
    }
    byte[] b = ip.rawBytes();
    for (int bit = prefix; bit < b.length * 8; bit++) {
      if ((b[bit >>> 3] & (0x80 >>> (bit & 7))) != 0) {
        Cidr fixed = new Cidr(IpLiteral.fromBytes(mask(b, prefix)), prefix);
        throw new PatternException(
            "'" + text + "' has host bits set after /" + prefix + "; did you mean '" + fixed + "'?");
      }
    }
    return new Cidr(ip, prefix);
  }

  public boolean contains(IpLiteral address) {
    byte[] a = address.rawBytes();
    byte[] n = network.rawBytes();
    if (a.length != n.length) {
      return false;
    }
    for (int bit = 0; bit < prefix; bit++) {
      int m = 0x80 >>> (bit & 7);
      if ((a[bit >>> 3] & m) != (n[bit >>> 3] & m)) {
        return false;
      }
    }
    return true;
  }

  private static byte[] mask(byte[] b, int prefix) {
    byte[] out = b.clone();
    for (int bit = prefix; bit < out.length * 8; bit++) {
      out[bit >>> 3] &= (byte) ~(0x80 >>> (bit & 7));
    }
    return out;
  }

  @Override
  public String toString() {
    return network + "/" + prefix;
  }
}
