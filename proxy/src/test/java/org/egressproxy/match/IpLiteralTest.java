package org.egressproxy.match;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class IpLiteralTest {

  @ParameterizedTest(name = "{0} -> {1}")
  @CsvSource(
      delimiter = '|',
      nullValues = "NULL",
      value = {
        "10.0.0.1 | 10.0.0.1",
        "217.73.63.211 | 217.73.63.211",
        "0.0.0.0 | 0.0.0.0",
        "255.255.255.255 | 255.255.255.255",
        "2001:db8::1 | 2001:db8::1",
        "[2001:db8::1] | 2001:db8::1",
        "2001:DB8:0:0:0:0:0:1 | 2001:db8::1",
        "::1 | ::1",
        "fd00::1 | fd00::1",
        "2001:0:0:1:0:0:0:1 | 2001:0:0:1::1",
        // IPv4-mapped IPv6 is the IPv4 address
        "::ffff:127.0.0.1 | 127.0.0.1",
        "[::ffff:169.254.169.254] | 169.254.169.254",
        "::ffff:7f00:1 | 127.0.0.1",
        // not literals
        "256.0.0.1 | NULL",
        "127.1 | NULL",
        "127.0.0.01 | NULL",
        "0x7f.0.0.1 | NULL",
        "2130706433 | NULL",
        "017700000001 | NULL",
        "1.2.3.4.5 | NULL",
        "1.2.3. | NULL",
        "' 1.2.3.4' | NULL",
        "fe80::1%eth0 | NULL",
        "[::1 | NULL",
        "1:2 | NULL",
        "example.com | NULL",
        "gggg::1 | NULL",
        "::ffff:1.2.3 | NULL",
        // in brackets, without a colon: never handed to InetAddress (a number would be read as
        // IPv4, a word of hex letters looked up as a host name)
        "[2130706433] | NULL",
        "[cafe] | NULL",
        "[127.0.0.1] | NULL",
      })
  void parses(String text, String expected) {
    IpLiteral ip = IpLiteral.parse(text);
    assertThat(ip == null ? null : ip.toString()).isEqualTo(expected);
  }

  /** ip:port as logged and printed: IPv6 compressed, in brackets, without a scope. */
  @ParameterizedTest
  @CsvSource({"127.0.0.1, 3128, 127.0.0.1:3128", "0:0:0:0:0:0:0:1, 443, [::1]:443",
      "FD00:0:0:0:0:0:0:4, 80, [fd00::4]:80", "fe80::1%1, 22, [fe80::1]:22"})
  void hostPort(String ip, int port, String expected) throws Exception {
    java.net.InetAddress a = ip.indexOf('%') >= 0
        ? java.net.Inet6Address.getByAddress(null,
            java.net.InetAddress.getByName(ip.substring(0, ip.indexOf('%'))).getAddress(), 1)
        : java.net.InetAddress.getByName(ip);
    assertThat(IpLiteral.hostPort(new java.net.InetSocketAddress(a, port))).isEqualTo(expected);
  }
}
