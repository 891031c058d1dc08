package org.egressproxy.fuzz;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.UnpooledDirectByteBuf;
import io.netty.buffer.UnpooledHeapByteBuf;
import java.util.ArrayList;
import java.util.List;

/**
 * An allocator that remembers every buffer it hands out, so that a fuzz run can check that each
 * was released: an exact leak check per input, cheaper than the PARANOID detector's stack traces
 * on every access.
 */
final class TrackingAllocator extends AbstractByteBufAllocator {
  private final List<ByteBuf> handedOut = new ArrayList<>();

  TrackingAllocator() {
    super(false); // heap buffers; no leak detector: this class is the check
  }

  @Override
  public boolean isDirectBufferPooled() {
    return false;
  }

  @Override
  protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
    return track(new UnpooledHeapByteBuf(this, initialCapacity, maxCapacity));
  }

  @Override
  protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
    return track(new UnpooledDirectByteBuf(this, initialCapacity, maxCapacity));
  }

  @Override
  public CompositeByteBuf compositeHeapBuffer(int maxNumComponents) {
    return track(new CompositeByteBuf(this, false, maxNumComponents));
  }

  @Override
  public CompositeByteBuf compositeDirectBuffer(int maxNumComponents) {
    return track(new CompositeByteBuf(this, true, maxNumComponents));
  }

  private <T extends ByteBuf> T track(T b) {
    handedOut.add(b);
    return b;
  }

  /** Buffers handed out and not released. */
  List<ByteBuf> unreleased() {
    return handedOut.stream().filter(b -> b.refCnt() != 0).toList();
  }
}
