package org.egressproxy.log;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Instant;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class IsoInstantTest {

  /** Exactly Instant.toString(), for every precision it picks and across many seconds. */
  @Test
  void writesWhatInstantToStringWrites() {
    SplittableRandom r = new SplittableRandom(2026);
    long now = Instant.parse("2026-11-23T15:33:27Z").getEpochSecond();
    for (int i = 0; i < 200_000; i++) {
      long second = i % 4 == 0 ? now + (i & 3) : r.nextLong(0, 253_402_300_799L); // to 9999
      int nano = switch (i % 5) {
        case 0 -> 0;
        case 1 -> r.nextInt(1000) * 1_000_000;
        case 2 -> r.nextInt(1_000_000) * 1_000;
        case 3 -> r.nextInt(1_000_000_000);
        default -> r.nextInt(10) * 100_000_000 + 1; // a lone last digit
      };
      Instant t = Instant.ofEpochSecond(second, nano);
      StringBuilder sb = new StringBuilder();
      IsoInstant.append(sb, t);
      assertThat(sb.toString()).isEqualTo(t.toString());
    }
  }

  @Test
  void aNameWithNothingToEscapeIsCopiedAndOneWithSomethingIsEscaped() {
    assertThat(Json.quote("api.allowed.test")).isEqualTo("\"api.allowed.test\"");
    assertThat(Json.quote("a\"b\\c\nd\u0001e\u2028")).isEqualTo(
        "\"a\\\"b\\\\c\\nd\\u0001e\\u2028\"");
    assertThat(Json.quote("")).isEqualTo("\"\"");
    assertThat(Json.quote("a\u0085b\u009fc\u00a0")).isEqualTo("\"a\\u0085b\\u009fc\u00a0\"");
  }
}
