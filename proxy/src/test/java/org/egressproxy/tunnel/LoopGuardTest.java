package org.egressproxy.tunnel;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import org.junit.jupiter.api.Test;

class LoopGuardTest {
  static InetAddress ip(String literal) throws Exception {
    return InetAddress.getByName(literal); // literals only: no lookup
  }

  @Test
  void aListenerBoundToOneAddressIsMatchedExactlyAndByTheUnspecifiedAddress() throws Exception {
    LoopGuard g = new LoopGuard();
    g.add(new InetSocketAddress(ip("127.0.0.1"), 3128));
    assertThat(g.isSelf(ip("127.0.0.1"), 3128)).isTrue();
    assertThat(g.isSelf(ip("0.0.0.0"), 3128)).as("0.0.0.0 connects to this host").isTrue();
    assertThat(g.isSelf(ip("::"), 3128)).isTrue();
    assertThat(g.isSelf(ip("127.0.0.2"), 3128)).as("another loopback address: not bound").isFalse();
    assertThat(g.isSelf(ip("127.0.0.1"), 3129)).isFalse();
    assertThat(g.isSelf(ip("::ffff:127.0.0.1"), 3128)).as("IPv4-mapped").isTrue();
  }

  @Test
  void aWildcardListenerIsEveryAddressOfThisHostOnItsPort() throws Exception {
    LoopGuard g = new LoopGuard();
    g.add(new InetSocketAddress(ip("0.0.0.0"), 8443));
    assertThat(g.isSelf(ip("127.0.0.1"), 8443)).isTrue();
    assertThat(g.isSelf(ip("127.9.9.9"), 8443)).as("all of 127/8 is this host").isTrue();
    assertThat(g.isSelf(ip("::1"), 8443)).isTrue();
    for (var nif : java.util.Collections.list(java.net.NetworkInterface.getNetworkInterfaces())) {
      for (InetAddress a : java.util.Collections.list(nif.getInetAddresses())) {
        assertThat(g.isSelf(a, 8443)).as("interface address %s", a).isTrue();
      }
    }
    assertThat(g.isSelf(ip("192.0.2.1"), 8443)).as("TEST-NET-1: not ours").isFalse();
    assertThat(g.isSelf(ip("127.0.0.1"), 443)).isFalse();
  }
}
