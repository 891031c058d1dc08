package org.egressproxy.match;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class NamePatternTest {
  private static final Map<String, String> VARS =
      Map.of("location", "eastus", "any", "*", "universeDomain", "universe.example.local");

  @ParameterizedTest(name = "{0} -> {1}")
  @CsvSource(
      delimiter = '|',
      value = {
        "mcr.microsoft.com | mcr.microsoft.com",
        "MCR.Microsoft.com. | mcr.microsoft.com",
        "*.data.mcr.microsoft.com | *.data.mcr.microsoft.com",
        "*.hcp.{location}.azmk8s.io | *.hcp.eastus.azmk8s.io",
        "{location}.handler.control.monitor.azure.com | eastus.handler.control.monitor.azure.com",
        "*.hcp.{any}.azmk8s.io | *.hcp.{any}.azmk8s.io",
        "{any}.dp.kubernetesconfiguration.azure.com | {any}.dp.kubernetesconfiguration.azure.com",
        "hub.{universeDomain} | hub.universe.example.local",
        "api.*.example.com | api.*.example.com",
        "bücher.example | xn--bcher-kva.example",
      })
  void parses(String pattern, String text) throws PatternException {
    assertThat(NamePattern.parse(pattern, VARS).text()).isEqualTo(text);
  }

  @Test
  void variableStarIsOneLabelEvenInFront() throws PatternException {
    NamePattern p = NamePattern.parse("{any}.handler.example.com", VARS);
    assertThat(p.leadingWildcard()).isFalse();
    assertThat(p.reversedLabels()).containsExactly("com", "example", "handler", "*");
    NamePattern q = NamePattern.parse("*.handler.example.com", VARS);
    assertThat(q.leadingWildcard()).isTrue();
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(
      delimiter = '|',
      value = {
        "*foo.com | for every subdomain write '*.foo.com'",
        "foo*.example.com | for every subdomain write '*.example.com'",
        "md-*.blob.core.windows.net | '*' must be a whole label",
        "a.b*.com | partial-label wildcards",
        "a..b | empty label",
        ".data.mcr.azk8s.cn | write '*.data.mcr.azk8s.cn'",
        "* | matches every name",
        "*.* | matches every name",
        "https://example.com | not a host pattern",
        "example.com:443 | not a host pattern",
        "-bad.example.com | may not start or end with '-'",
        "bad!.example.com | may only hold letters",
        "1.2.3.4 | looks like an IP address",
        "x.{nope}.com | which is not set",
        "x.{any}y.com | must stand for a whole label",
        "x.{loc.com | unbalanced",
      })
  void rejectsWithAdvice(String pattern, String advice) {
    assertThatThrownBy(() -> NamePattern.parse(pattern, VARS))
        .isInstanceOf(PatternException.class)
        .hasMessageContaining(advice);
  }

  @Test
  void rejectsLongLabelsAndNames() {
    assertThatThrownBy(() -> NamePattern.parse("a".repeat(64) + ".com"))
        .hasMessageContaining("longer than 63");
    String longName = ("a".repeat(60) + ".").repeat(5) + "com"; // 308 characters
    assertThatThrownBy(() -> NamePattern.parse("x.x." + longName))
        .hasMessageContaining("longer than 253");
  }

  @Test
  void unsetVariableIsReportedByName() {
    assertThatThrownBy(() -> NamePattern.parse("*.hcp.{location}.azmk8s.io", Map.of()))
        .isInstanceOfSatisfying(
            PatternException.class, e -> assertThat(e.unsetVariable()).isEqualTo("location"));
  }
}
