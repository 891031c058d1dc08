package org.egressproxy.policy;

import java.util.List;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.CidrTrie;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.match.MatchEntry;
import org.egressproxy.match.PatternException;

/**
 * Address ranges an egress proxy refuses to connect to unless {@code allowDestinationCidrs}
 * covers them: this host, private networks, link-local (including the cloud metadata service
 * 169.254.169.254), Azure's wire server 168.63.129.16, CGNAT, multicast, reserved, and the IPv6
 * forms that embed or translate IPv4 (NAT64, 6to4, Teredo, SIIT's IPv4-translated). IPv4-mapped IPv6 is classified as the IPv4 address it maps ({@link
 * IpLiteral} unmaps it).
 */
public final class PrivateRanges {
  /** The ranges, with the reason each is refused. */
  public static final List<String> CIDRS = List.of(
      "0.0.0.0/8", // "this" network, unspecified
      "10.0.0.0/8", // RFC 1918
      "100.64.0.0/10", // CGNAT, RFC 6598
      "127.0.0.0/8", // loopback
      // Azure's wire server (platform DNS, the VM agent's configuration and certificates): a
      // public address that every Azure VM reaches as its own - the proxy's VM, here
      "168.63.129.16/32",
      "169.254.0.0/16", // link-local, cloud metadata
      "172.16.0.0/12", // RFC 1918
      "192.0.0.0/24", // IETF protocol assignments
      "192.0.2.0/24", // TEST-NET-1
      "192.88.99.0/24", // 6to4 relay anycast
      "192.168.0.0/16", // RFC 1918
      "198.18.0.0/15", // benchmarking
      "198.51.100.0/24", // TEST-NET-2
      "203.0.113.0/24", // TEST-NET-3
      "224.0.0.0/4", // multicast
      "240.0.0.0/4", // reserved, broadcast
      "::/128", // unspecified
      "::1/128", // loopback
      "::/96", // IPv4-compatible (deprecated)
      "::ffff:0:0:0/96", // IPv4-translated (SIIT, RFC 2765)
      "64:ff9b::/96", // NAT64 well-known prefix
      "64:ff9b:1::/48", // local-use NAT64
      "100::/64", // discard-only
      "2001::/32", // Teredo
      "2001:2::/48", // benchmarking
      "2001:db8::/32", // documentation
      "2002::/16", // 6to4
      "fc00::/7", // unique local (fd00::/8 included)
      "fe80::/10", // link-local
      "fec0::/10", // site-local (deprecated)
      "ff00::/8"); // multicast

  private enum Marker implements MatchEntry {
    PRIVATE;

    @Override
    public boolean isDeny() {
      return true;
    }

    @Override
    public boolean accepts(int port, int protocol) {
      return true;
    }
  }

  private static final CidrTrie<Marker> TRIE;

  static {
    CidrTrie.Builder<Marker> b = CidrTrie.builder(Marker.class);
    for (String c : CIDRS) {
      try {
        b.add(Cidr.parse(c), Marker.PRIVATE);
      } catch (PatternException e) {
        throw new ExceptionInInitializerError(e);
      }
    }
    TRIE = b.build();
  }

  private PrivateRanges() {}

  public static boolean contains(IpLiteral address) {
    return TRIE.covers(address);
  }
}
