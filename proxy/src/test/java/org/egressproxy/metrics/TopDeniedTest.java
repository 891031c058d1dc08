package org.egressproxy.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The most denied destinations stay bounded - in entries and in bytes - and still show the
 * busy ones: whether they come before or after a flood of names denied once each.
 */
class TopDeniedTest {
  @Test
  void aBusyDestinationOutlastsAFloodOfOneOffNames() {
    TopDenied top = new TopDenied();
    for (int i = 0; i < 300; i++) {
      top.record("registry.example.test", 443);
    }
    for (int i = 0; i < 50_000; i++) {
      top.record("scan-" + i + ".example.test", 443);
      if (i % 100 == 0) {
        top.record("registry.example.test", 443);
      }
    }
    List<Map.Entry<String, Long>> first = top.top(1);
    assertThat(first).extracting(Map.Entry::getKey).containsExactly("registry.example.test:443");
    assertThat(first.get(0).getValue()).isEqualTo(800L);
    assertThat(top.size()).isLessThanOrEqualTo(TopDenied.MAX_KEYS);
  }

  @Test
  void aDestinationFirstDeniedAfterManyOthersStillShows() {
    TopDenied top = new TopDenied();
    for (int i = 0; i < 20_000; i++) {
      top.record("old-" + i + ".example.test", 443);
    }
    for (int i = 0; i < 500; i++) {
      top.record("late.example.test", 443);
    }
    List<Map.Entry<String, Long>> first = top.top(3);
    assertThat(first.get(0).getKey()).isEqualTo("late.example.test:443");
    assertThat(first.get(0).getValue()).as("counted from when it got in").isBetween(400L, 500L);
    assertThat(top.size()).isLessThanOrEqualTo(TopDenied.MAX_KEYS);
  }

  @Test
  void aLongRawTargetIsKeptCut() {
    TopDenied top = new TopDenied();
    top.record("x".repeat(8000), 0);
    top.record("y".repeat(300), 65535);
    top.record("short.test", 0);
    assertThat(top.top(10)).hasSize(3).allSatisfy(e ->
        assertThat(e.getKey().length()).isLessThanOrEqualTo(TopDenied.MAX_KEY));
    assertThat(top.top(10)).extracting(Map.Entry::getKey).contains("short.test")
        .anySatisfy(k -> assertThat(k).startsWith("yyy").endsWith("\u2026:65535"));
  }
}
