using System.Security.Cryptography;
using Broker.Durability;
using Broker.Routing;
using NUnit.Framework;

namespace Broker.Tests.Durability;

/// <summary>
/// The contract of <see cref="ISessionStore"/> and <see cref="IUserRegistry"/>, held by every backend.
/// Each test gets its own backend (fresh file, key prefix or instance) and unique ids, so fixtures may
/// run in parallel. Time is a <see cref="ManualClock"/>; the store keeps whole milliseconds.
/// </summary>
public abstract class SessionStoreSpecification
{
    protected static readonly TimeSpan Ttl = TimeSpan.FromHours(1);

    private readonly List<object> _created = [];

    private protected ManualClock Clock { get; private set; } = null!;

    protected ISessionStore Store { get; private set; } = null!;

    protected IUserRegistry Registry { get; private set; } = null!;

    /// <summary>A new, empty backend whose store and registry share their storage.</summary>
    protected abstract Task<(ISessionStore Store, IUserRegistry Registry)> CreateAsync(TimeSpan ttl, TimeProvider clock);

    [SetUp]
    public async Task CreateBackend()
    {
        Clock = new ManualClock();
        (Store, Registry) = await CreateAsync(Ttl, Clock);
        _created.Add(Store);
        _created.Add(Registry);
    }

    [TearDown]
    public void DisposeBackend()
    {
        foreach (var disposable in _created.OfType<IDisposable>().Distinct())
        {
            disposable.Dispose();
        }

        _created.Clear();
    }

    [Test]
    public async Task A_saved_record_is_found_by_its_token_hash_with_every_field()
    {
        var record = NewRecord() with
        {
            Principal = "alice",
            Node = "node-a",
            Subscriptions =
            [
                new SubscriptionRecord("sub-0", "/topic/chat.*", AckMode.Auto),
                new SubscriptionRecord("sub-1", "/queue/jobs", AckMode.ClientIndividual, Prefetch: 10, Epoch: "e-42", Position: 123_456_789_012),
                new SubscriptionRecord("sub-2", "/topic/ünïcödé \"quoted\"", AckMode.Client, Prefetch: 1, Epoch: "", Position: 0),
            ],
            Metadata = new Dictionary<string, string> { ["tenant"] = "acme", ["empty"] = "", ["json-ish"] = "{\"a\":[1]}" },
            CreatedAt = Clock.GetUtcNow() - TimeSpan.FromMinutes(5),
            LastSeenAt = Clock.GetUtcNow(),
        };

        await Store.SaveAsync(record);
        var found = await Store.FindByTokenHashAsync(record.TokenHash);

        Assert.That(found, Is.Not.Null);
        AssertSameRecord(found!, record);
    }

    [Test]
    public async Task A_record_without_principal_node_subscriptions_or_metadata_round_trips()
    {
        var record = NewRecord();

        await Store.SaveAsync(record);
        var found = await Store.FindByTokenHashAsync(record.TokenHash);

        Assert.That(found, Is.Not.Null);
        AssertSameRecord(found!, record);
    }

    [Test]
    public async Task Saving_a_record_again_replaces_it()
    {
        var first = NewRecord() with { Node = "node-a", Subscriptions = [new SubscriptionRecord("a", "/topic/a", AckMode.Auto)] };
        await Store.SaveAsync(first);
        var second = first with
        {
            Node = "node-b",
            Subscriptions = [new SubscriptionRecord("b", "/queue/b", AckMode.Client, Epoch: "e1", Position: 7)],
            Metadata = new Dictionary<string, string> { ["k"] = "v" },
            LastSeenAt = Clock.GetUtcNow() + TimeSpan.FromSeconds(1),
        };

        await Store.SaveAsync(second);
        var found = await Store.FindByTokenHashAsync(first.TokenHash);

        Assert.That(found, Is.Not.Null);
        AssertSameRecord(found!, second);
    }

    [Test]
    public async Task Saving_a_record_with_a_new_token_hash_retires_the_old_one()
    {
        var first = NewRecord();
        await Store.SaveAsync(first);
        var second = first with { TokenHash = NewTokenHash() };

        await Store.SaveAsync(second);

        Assert.That(await Store.FindByTokenHashAsync(first.TokenHash), Is.Null);
        Assert.That((await Store.FindByTokenHashAsync(second.TokenHash))?.Id, Is.EqualTo(first.Id));
    }

    [Test]
    public async Task A_token_hash_that_belongs_to_another_session_is_refused()
    {
        var first = NewRecord();
        await Store.SaveAsync(first);
        var thief = NewRecord() with { TokenHash = first.TokenHash };

        Assert.That(async () => await Store.SaveAsync(thief), Throws.TypeOf<SessionStoreException>());
        Assert.That((await Store.FindByTokenHashAsync(first.TokenHash))?.Id, Is.EqualTo(first.Id));
    }

    [Test]
    public async Task An_unknown_token_hash_finds_nothing()
    {
        await Store.SaveAsync(NewRecord());

        Assert.That(await Store.FindByTokenHashAsync(NewTokenHash()), Is.Null);
    }

    [Test]
    public async Task A_removed_record_is_no_longer_found()
    {
        var record = NewRecord();
        var other = NewRecord();
        await Store.SaveAsync(record);
        await Store.SaveAsync(other);

        Assert.That(await Store.RemoveAsync(record.Id), Is.True);
        Assert.That(await Store.FindByTokenHashAsync(record.TokenHash), Is.Null);
        Assert.That(await Store.RemoveAsync(record.Id), Is.False);
        Assert.That(await Store.FindByTokenHashAsync(other.TokenHash), Is.Not.Null);
    }

    [Test]
    public async Task A_record_last_seen_longer_ago_than_the_TTL_is_not_found()
    {
        var record = NewRecord();
        await Store.SaveAsync(record);

        Clock.Advance(Ttl - TimeSpan.FromSeconds(1));
        Assert.That(await Store.FindByTokenHashAsync(record.TokenHash), Is.Not.Null);

        Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.That(await Store.FindByTokenHashAsync(record.TokenHash), Is.Null);
    }

    [Test]
    public async Task A_record_saved_already_expired_is_not_found()
    {
        var record = NewRecord() with { LastSeenAt = Clock.GetUtcNow() - Ttl - TimeSpan.FromMinutes(1) };

        await Store.SaveAsync(record);

        Assert.That(await Store.FindByTokenHashAsync(record.TokenHash), Is.Null);
    }

    [Test]
    public async Task Touch_updates_last_seen_and_keeps_the_record_findable_past_its_first_TTL()
    {
        var record = NewRecord();
        await Store.SaveAsync(record);

        Clock.Advance(Ttl * 0.75);
        var touchedAt = Clock.GetUtcNow();
        await Store.TouchAsync(record.Id, touchedAt);
        Clock.Advance(Ttl * 0.75);
        var found = await Store.FindByTokenHashAsync(record.TokenHash);

        Assert.That(found, Is.Not.Null);
        Assert.That(found!.LastSeenAt, Is.EqualTo(touchedAt));
        AssertSameRecord(found, record with { LastSeenAt = touchedAt });
    }

    [Test]
    public async Task Touching_an_unknown_session_creates_nothing()
    {
        var id = NewId();

        await Store.TouchAsync(id, Clock.GetUtcNow());

        Assert.That(await Store.RemoveAsync(id), Is.False);
    }

    [Test]
    public async Task RemoveExpired_deletes_records_last_seen_before_the_cutoff_and_counts_them()
    {
        var now = Clock.GetUtcNow();
        var old1 = NewRecord() with { LastSeenAt = now - TimeSpan.FromMinutes(40) };
        var old2 = NewRecord() with { LastSeenAt = now - TimeSpan.FromMinutes(20) };
        var atCutoff = NewRecord() with { LastSeenAt = now - TimeSpan.FromMinutes(10) };
        var fresh = NewRecord() with { LastSeenAt = now };
        foreach (var record in new[] { old1, old2, atCutoff, fresh })
        {
            await Store.SaveAsync(record);
        }

        var removed = await Store.RemoveExpiredAsync(now - TimeSpan.FromMinutes(10));

        Assert.That(removed, Is.EqualTo(2));
        Assert.That(await Store.RemoveAsync(old1.Id), Is.False);
        Assert.That(await Store.RemoveAsync(old2.Id), Is.False);
        Assert.That(await Store.FindByTokenHashAsync(atCutoff.TokenHash), Is.Not.Null, "last seen exactly at the cutoff is kept");
        Assert.That(await Store.FindByTokenHashAsync(fresh.TokenHash), Is.Not.Null);
        Assert.That(await Store.RemoveExpiredAsync(now - TimeSpan.FromMinutes(10)), Is.Zero);
    }

    [Test]
    public async Task RemoveExpired_prunes_registry_entries_whose_session_is_gone_but_not_recent_ones()
    {
        var principal = NewPrincipal();
        var start = Clock.GetUtcNow();
        var live = NewRecord() with { Principal = principal };
        var expired = NewRecord() with { Principal = principal, LastSeenAt = start };
        var neverSaved = NewId();
        await Store.SaveAsync(expired);
        await Registry.RegisterAsync(principal, live.Id, "node-a");
        await Registry.RegisterAsync(principal, expired.Id, "node-a");
        await Registry.RegisterAsync(principal, neverSaved, "node-dead");
        Clock.Advance(TimeSpan.FromMinutes(10));
        await Store.SaveAsync(live with { LastSeenAt = Clock.GetUtcNow() });
        var recent = NewId();
        await Registry.RegisterAsync(principal, recent, "node-b");

        var removed = await Store.RemoveExpiredAsync(start + TimeSpan.FromMinutes(5));

        Assert.That(removed, Is.EqualTo(1));
        var sessions = await Registry.GetSessionsAsync(principal);
        Assert.That(sessions, Is.EquivalentTo(new[] { new UserSession(live.Id, "node-a"), new UserSession(recent, "node-b") }));
    }

    [Test]
    public async Task The_registry_lists_each_users_sessions_and_nodes()
    {
        var alice = NewPrincipal();
        var bob = NewPrincipal();
        string a1 = NewId(), a2 = NewId(), a3 = NewId(), b1 = NewId();

        await Registry.RegisterAsync(alice, a1, "node-a");
        await Registry.RegisterAsync(alice, a2, "node-b");
        await Registry.RegisterAsync(alice, a3, "node-a");
        await Registry.RegisterAsync(bob, b1, "node-c");

        Assert.That(await Registry.GetSessionsAsync(alice), Is.EquivalentTo(new[]
        {
            new UserSession(a1, "node-a"), new UserSession(a2, "node-b"), new UserSession(a3, "node-a"),
        }));
        Assert.That(await Registry.GetSessionsAsync(bob), Is.EquivalentTo(new[] { new UserSession(b1, "node-c") }));
        Assert.That(await Registry.GetSessionsAsync(NewPrincipal()), Is.Empty);
    }

    [Test]
    public async Task Registering_a_session_again_moves_it_to_the_new_node()
    {
        var user = NewPrincipal();
        var id = NewId();
        await Registry.RegisterAsync(user, id, "node-a");

        await Registry.RegisterAsync(user, id, "node-b");

        Assert.That(await Registry.GetSessionsAsync(user), Is.EqualTo(new[] { new UserSession(id, "node-b") }));
    }

    [Test]
    public async Task Unregister_removes_only_that_session_of_that_user()
    {
        var alice = NewPrincipal();
        var bob = NewPrincipal();
        string a1 = NewId(), a2 = NewId(), shared = NewId();
        await Registry.RegisterAsync(alice, a1, "node-a");
        await Registry.RegisterAsync(alice, a2, "node-a");
        await Registry.RegisterAsync(alice, shared, "node-a");
        await Registry.RegisterAsync(bob, shared, "node-b");

        await Registry.UnregisterAsync(alice, a1);
        await Registry.UnregisterAsync(alice, shared);
        await Registry.UnregisterAsync(alice, NewId());
        await Registry.UnregisterAsync(NewPrincipal(), a2);

        Assert.That(await Registry.GetSessionsAsync(alice), Is.EqualTo(new[] { new UserSession(a2, "node-a") }));
        Assert.That(await Registry.GetSessionsAsync(bob), Is.EqualTo(new[] { new UserSession(shared, "node-b") }));

        await Registry.UnregisterAsync(alice, a2);
        Assert.That(await Registry.GetSessionsAsync(alice), Is.Empty);
    }

    [Test]
    public async Task Fifty_concurrent_saves_of_different_sessions_all_land()
    {
        var records = Enumerable.Range(0, 50)
            .Select(i => NewRecord() with { Subscriptions = [new SubscriptionRecord($"sub-{i}", $"/topic/t.{i}", AckMode.Auto, Position: i)] })
            .ToArray();

        await Task.WhenAll(records.Select(r => Task.Run(async () => await Store.SaveAsync(r))));

        foreach (var record in records)
        {
            var found = await Store.FindByTokenHashAsync(record.TokenHash);
            Assert.That(found, Is.Not.Null, record.Id);
            AssertSameRecord(found!, record);
        }
    }

    [Test]
    public async Task Fifty_concurrent_registrations_of_one_user_all_land()
    {
        var user = NewPrincipal();
        var ids = Enumerable.Range(0, 50).Select(_ => NewId()).ToArray();

        await Task.WhenAll(ids.Select(id => Task.Run(async () => await Registry.RegisterAsync(user, id, "node-a"))));

        Assert.That((await Registry.GetSessionsAsync(user)).Select(s => s.SessionId), Is.EquivalentTo(ids));
    }

    protected static string NewId() => $"s-{Guid.NewGuid():N}";

    protected static string NewPrincipal() => $"user-{Guid.NewGuid():N}";

    protected static byte[] NewTokenHash() => SHA256.HashData(RandomNumberGenerator.GetBytes(32));

    protected SessionRecord NewRecord() => new()
    {
        Id = NewId(),
        TokenHash = NewTokenHash(),
        CreatedAt = Clock.GetUtcNow(),
        LastSeenAt = Clock.GetUtcNow(),
    };

    protected static void AssertSameRecord(SessionRecord actual, SessionRecord expected)
    {
        Assert.Multiple(() =>
        {
            Assert.That(actual.Id, Is.EqualTo(expected.Id), "Id");
            Assert.That(actual.TokenHash, Is.EqualTo(expected.TokenHash), "TokenHash");
            Assert.That(actual.Principal, Is.EqualTo(expected.Principal), "Principal");
            Assert.That(actual.Node, Is.EqualTo(expected.Node), "Node");
            Assert.That(actual.Subscriptions, Is.EqualTo(expected.Subscriptions), "Subscriptions");
            Assert.That(actual.Metadata, Is.EquivalentTo(expected.Metadata), "Metadata");
            Assert.That(actual.CreatedAt, Is.EqualTo(expected.CreatedAt), "CreatedAt");
            Assert.That(actual.LastSeenAt, Is.EqualTo(expected.LastSeenAt), "LastSeenAt");
        });
    }
}
