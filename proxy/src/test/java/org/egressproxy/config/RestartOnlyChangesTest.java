package org.egressproxy.config;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.StringReader;
import org.junit.jupiter.api.Test;

/** What a reload cannot apply is named, so that an operator is not told "reloaded" in vain. */
class RestartOnlyChangesTest {
  static final String BASE = """
      listeners:
        - {name: explicit, mode: http-proxy, bind: "127.0.0.1:3128"}
      policy:
        rules:
          - allow: a.test
      resolver:
        hosts: {a.test: 127.0.0.1}
      timeouts: {idle: 1h}
      """;

  static Config read(String yaml) {
    Problems problems = new Problems();
    Config c = ConfigLoader.read("test.yaml", new StringReader(yaml), problems);
    assertThat(problems.hasErrors()).as("%s", problems.all()).isFalse();
    return c;
  }

  @Test
  void policyChangesAndMovedLinesNeedNoRestart() {
    Config running = read(BASE);
    String next = "# a comment moves every line\n" + BASE.replace("- allow: a.test",
        "- allow: a.test\n    - allow: b.test");
    assertThat(running.restartOnlyChanges(read(next))).isEmpty();
  }

  @Test
  void everythingOutsideThePolicyIsNamed() {
    Config running = read(BASE);
    String next = BASE.replace("127.0.0.1:3128", "127.0.0.1:3129")
        .replace("{a.test: 127.0.0.1}", "{a.test: 127.0.0.2}")
        .replace("{idle: 1h}", "{idle: 2h}")
        + "limits: {maxConnections: 10}\ntunnel: {refuseEch: true}\nshutdown: {drain: 5s}\n"
        + "upstream: {proxy: \"http://127.0.0.1:8080\"}\ncache: {maxEntries: 10}\n"
        + "admin: {bind: \"127.0.0.1:9999\"}\ndecisionLog: {path: other.jsonl}\n";
    assertThat(running.restartOnlyChanges(read(next))).containsExactly("listeners", "admin",
        "resolver.hosts", "decisionLog", "cache", "timeouts", "tunnel", "shutdown", "upstream",
        "limits");
  }
}
