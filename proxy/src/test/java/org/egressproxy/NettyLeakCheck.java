package org.egressproxy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetectorFactory;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails a test class when Netty's leak detector (PARANOID in Surefire's argLine) reports a
 * leaked buffer while it ran. Registered for every test class through the service loader and
 * extension auto-detection, and installed before any buffer class loads.
 */
public final class NettyLeakCheck implements AfterAllCallback {
  static final List<String> LEAKS = new CopyOnWriteArrayList<>();

  static {
    ResourceLeakDetectorFactory.setResourceLeakDetectorFactory(new ResourceLeakDetectorFactory() {
      @Override
      @SuppressWarnings("deprecation")
      public <T> ResourceLeakDetector<T> newResourceLeakDetector(Class<T> resource,
          int samplingInterval, long maxActive) {
        return new ResourceLeakDetector<>(resource, samplingInterval) {
          @Override
          protected void reportTracedLeak(String resourceType, String records) {
            LEAKS.add(resourceType + records);
            super.reportTracedLeak(resourceType, records);
          }

          @Override
          protected void reportUntracedLeak(String resourceType) {
            LEAKS.add(resourceType);
            super.reportUntracedLeak(resourceType);
          }
        };
      }
    });
  }

  @Override
  public void afterAll(ExtensionContext context) throws Exception {
    assertNoLeaks(context.getDisplayName());
  }

  /**
   * Fails when Netty has reported a leaked buffer so far: for tests that check after each step
   * (the load and fault tests) rather than only at the end of the class.
   */
  public static void assertNoLeaks(String where) throws InterruptedException {
    // Leaks are reported when a leaked buffer has been collected and another is allocated.
    for (int i = 0; i < 3; i++) {
      System.gc();
      Thread.sleep(20);
      ByteBuf b = PooledByteBufAllocator.DEFAULT.buffer(16);
      b.release();
    }
    if (!LEAKS.isEmpty()) {
      String report = String.join("\n---\n", LEAKS);
      LEAKS.clear();
      throw new AssertionError("Netty reported leaked buffers in " + where + ":\n" + report);
    }
  }
}
