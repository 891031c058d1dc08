package org.egressproxy.match;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class CidrTest {
  @Test
  void parsesAndContains() throws PatternException {
    Cidr c = Cidr.parse("10.20.0.0/16");
    assertThat(c.contains(IpLiteral.parse("10.20.255.1"))).isTrue();
    assertThat(c.contains(IpLiteral.parse("10.21.0.1"))).isFalse();
    assertThat(c.contains(IpLiteral.parse("::ffff:10.20.0.1"))).isTrue();
    assertThat(c.contains(IpLiteral.parse("2001:db8::1"))).isFalse();
    assertThat(Cidr.parse("217.73.63.211").toString()).isEqualTo("217.73.63.211/32");
    assertThat(Cidr.parse("fd00::/8").contains(IpLiteral.parse("fdab::1"))).isTrue();
    assertThat(Cidr.parse("::ffff:10.0.0.0/104").toString()).isEqualTo("10.0.0.0/8");
  }

  @Test
  void rejectsWithAdvice() {
    assertThatThrownBy(() -> Cidr.parse("10.0.0.1/8")).hasMessageContaining("did you mean '10.0.0.0/8'");
    assertThatThrownBy(() -> Cidr.parse("10.0.0.0/33")).hasMessageContaining("0-32");
    assertThatThrownBy(() -> Cidr.parse("10.0.0/8")).hasMessageContaining("not a CIDR");
    assertThatThrownBy(() -> Cidr.parse("10.0.0.0/")).hasMessageContaining("prefix length");
    assertThatThrownBy(() -> Cidr.parse("fd00::/129")).hasMessageContaining("0-128");
  }

  /** What is pasted from a vendor's table - a URL, a host with a port or a path - is named so. */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', quoteCharacter = '"', value = {
      "https://q.example.com/| is a URL| 'q.example.com'|false",
      "https://q.example.com:443/v2/| is a URL| 'q.example.com'|true",
      "q.example.com:443| has a port| 'q.example.com'|true",
      "*.example.com/path| has a path| '*.example.com'|false",
      "mcr.microsoft.com/v2| has a path| 'mcr.microsoft.com'|false"})
  void aUrlOrAHostWithAPortOrPathIsToldToBeWrittenAsTheHost(String text, String what,
      String host, boolean port) {
    assertThatThrownBy(() -> Cidr.parse(text)).satisfies(e -> {
      assertThat(e.getMessage()).contains(what).contains("write " + host)
          .doesNotContain("CIDR");
      assertThat(e.getMessage().contains("ports:")).isEqualTo(port);
    });
  }

  @Test
  void trieAppliesDenyOverAllowAndLongestPrefix() throws PatternException {
    record E(String id, boolean deny) implements MatchEntry {
      @Override
      public boolean isDeny() {
        return deny;
      }

      @Override
      public boolean accepts(int port, int protocol) {
        return port == 443;
      }
    }
    CidrTrie<E> t = CidrTrie.builder(E.class)
        .add(Cidr.parse("10.0.0.0/8"), new E("wide", false))
        .add(Cidr.parse("10.1.0.0/16"), new E("narrow", false))
        .add(Cidr.parse("10.2.0.0/16"), new E("deny", true))
        .add(Cidr.parse("10.2.3.0/24"), new E("inside-deny", false))
        .build();
    assertThat(t.find(IpLiteral.parse("10.9.9.9"), 443, 1).id()).isEqualTo("wide");
    assertThat(t.find(IpLiteral.parse("10.1.9.9"), 443, 1).id()).isEqualTo("narrow");
    assertThat(t.find(IpLiteral.parse("10.2.3.4"), 443, 1).id()).isEqualTo("deny");
    assertThat(t.find(IpLiteral.parse("10.1.9.9"), 80, 1)).isNull();
    assertThat(t.find(IpLiteral.parse("11.0.0.1"), 443, 1)).isNull();
    assertThat(t.covers(IpLiteral.parse("10.200.0.1"))).isTrue();
    assertThat(t.covers(IpLiteral.parse("::1"))).isFalse();
  }
}
