package org.egressproxy.policy;

import static org.assertj.core.api.Assertions.assertThat;

import org.egressproxy.match.IpLiteral;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The ranges refused as private-destination, at their edges. (Unit level: a regression here
 * must not make an end-to-end test connect to an outside address.)
 */
class PrivateRangesTest {
  @ParameterizedTest(name = "{0}: {1}")
  @CsvSource({
      "168.63.129.16, true", "168.63.129.15, false", "168.63.129.17, false",
      "::ffff:0:a9fe:a9fe, true", "::ffff:0:0808:0808, true", "::fffe:0:808:808, false",
      "::ffff:808:808, false", // IPv4-mapped 8.8.8.8: the IPv4 address itself
      "2001:2::1, true", "2001:2:0:ffff::1, true", "2001:3::1, false",
      "169.254.169.254, true", "10.1.2.3, true", "100.64.0.1, true", "8.8.8.8, false",
      "64:ff9b::a9fe:a9fe, true", "2002:a9fe:a9fe::1, true", "2606:4700::1, false"})
  void classifies(String address, boolean refused) {
    assertThat(PrivateRanges.contains(IpLiteral.parse(address))).isEqualTo(refused);
  }
}
