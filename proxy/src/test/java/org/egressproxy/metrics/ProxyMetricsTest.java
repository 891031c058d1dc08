package org.egressproxy.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** What /metrics says about Netty's buffers: the allocator the channels actually use. */
class ProxyMetricsTest {
  @Test
  void theAllocatorMetricsFollowTheBuffersChannelsUse() {
    ProxyMetrics metrics = new ProxyMetrics();
    String type = ByteBufAllocator.DEFAULT.getClass().getSimpleName();
    Pattern direct = Pattern.compile("netty_allocator_memory_used\\{[^}]*allocator_type=\""
        + type + "\"[^}]*memory_type=\"direct\"[^}]*} (\\S+)");
    double before = value(direct, metrics.scrape());
    ByteBuf held = ByteBufAllocator.DEFAULT.directBuffer(8 << 20);
    try {
      assertThat(value(direct, metrics.scrape()))
          .as("direct memory in use after taking 8 MiB").isGreaterThanOrEqualTo(before + (8 << 20));
    } finally {
      held.release();
    }
  }

  private static double value(Pattern p, String scrape) {
    Matcher m = p.matcher(scrape);
    assertThat(m.find()).as("%s in\n%s", p, scrape.lines()
        .filter(l -> l.startsWith("netty_allocator")).toList()).isTrue();
    return Double.parseDouble(m.group(1));
  }
}
