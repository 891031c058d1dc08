package org.egressproxy.policy;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;

/**
 * Decides destinations through a bounded Caffeine cache in front of the current {@link
 * CompiledPolicy}. A new policy is installed atomically; a decision cached under an older policy
 * is never served (each decision carries its policy's generation, checked on every hit), and the
 * cache is emptied on install so the old decisions do not hold memory.
 */
public final class Decider {
  private final Cache<Destination, Decision> cache;
  private final boolean caching;
  private volatile CompiledPolicy policy;

  /**
   * @param maxEntries the cache bound ({@code cache.maxEntries}); 0 turns caching off
   */
  public Decider(CompiledPolicy policy, int maxEntries) {
    this.policy = policy;
    this.caching = maxEntries > 0;
    this.cache = Caffeine.newBuilder().maximumSize(maxEntries).recordStats().build();
  }

  /** The decision for {@code d}; allocation-free on a cache hit. */
  public Decision decide(Destination d) {
    CompiledPolicy p = policy;
    if (!caching || !d.valid()) {
      return p.decide(d);
    }
    Decision cached = cache.getIfPresent(d);
    if (cached != null && cached.generation() == p.generation()) {
      return cached;
    }
    Decision fresh = p.decide(d);
    cache.put(d, fresh);
    return fresh;
  }

  /** Makes {@code next} the policy for every decision from now on. */
  public void install(CompiledPolicy next) {
    policy = next;
    cache.invalidateAll();
  }

  public CompiledPolicy policy() {
    return policy;
  }

  /** The cache, for metrics ({@code cache="decisions"}) and tests. */
  public Cache<Destination, Decision> cache() {
    return cache;
  }
}
