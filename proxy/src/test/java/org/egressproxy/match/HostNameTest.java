package org.egressproxy.match;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class HostNameTest {

  @ParameterizedTest(name = "{0} -> {1}")
  @CsvSource(
      delimiter = '|',
      nullValues = "NULL",
      value = {
        "mcr.microsoft.com | mcr.microsoft.com",
        "MCR.Microsoft.COM | mcr.microsoft.com",
        "mcr.microsoft.com. | mcr.microsoft.com",
        "x_y.example.com | x_y.example.com",
        "localhost | localhost",
        "3com.com | 3com.com",
        "a.1b | a.1b",
        // IDN: Unicode to punycode; full-width letters and the ideographic full stop fold.
        "bücher.example | xn--bcher-kva.example",
        "BÜCHER.example. | xn--bcher-kva.example",
        "ｍｃｒ.microsoft.com | mcr.microsoft.com",
        "mcr。microsoft。com | mcr.microsoft.com",
        // Cyrillic 'і' look-alike stays a different name.
        "mіcrosoft.com | xn--mcrosoft-thh.com",
        // invalid
        "'' | NULL",
        ". | NULL",
        "a..b | NULL",
        ".a.b | NULL",
        "a.b.. | NULL",
        "-a.com | NULL",
        "a-.com | NULL",
        "a b.com | NULL",
        "a%2eb.com | NULL",
        "evil.com/x | NULL",
        "allowed@evil.com | NULL",
        "host:443 | NULL",
        "127.1 | NULL",
        "2130706433 | NULL",
        "0x7f.1 | NULL",
        "0x7f000001 | NULL",
        "0X7F000001 | NULL",
        "a.0x | NULL",
        "0x7g | 0x7g",
        "a.0x7f.com | a.0x7f.com",
        "017700000001 | NULL",
        "10.0.0.1 | NULL",
        "*.example.com | NULL",
      })
  void normalizes(String raw, String expected) {
    assertThat(HostName.normalize(raw)).isEqualTo(expected);
  }

  @org.junit.jupiter.api.Test
  void rejectsControlCharactersAndOverlongNames() {
    assertThat(HostName.normalize("a\u0000b.com")).isNull();
    assertThat(HostName.normalize("a\r\nb.com")).isNull();
    assertThat(HostName.normalize("a\tb.com")).isNull();
    String label63 = "a".repeat(63);
    assertThat(HostName.normalize(label63 + ".com")).isEqualTo(label63 + ".com");
    assertThat(HostName.normalize("a" + label63 + ".com")).isNull();
    String name253 = (label63 + ".").repeat(3) + "a".repeat(61); // 64*3 + 61 = 253
    assertThat(name253).hasSize(253);
    assertThat(HostName.normalize(name253)).isEqualTo(name253);
    assertThat(HostName.normalize(name253 + ".")).isEqualTo(name253);
    assertThat(HostName.normalize(name253 + "a")).isNull();
  }

  @org.junit.jupiter.api.Test
  void canonicalInputIsReturnedAsIs() {
    String s = "packages.aks.azure.com";
    assertThat(HostName.normalize(s)).isSameAs(s);
  }
}
