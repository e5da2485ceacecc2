using Broker.Security;
using NUnit.Framework;

namespace Broker.Tests.Security;

[TestFixture]
public sealed class PasscodeHasherTests
{
    private const int FastIterations = PasscodeHasher.MinIterations;

    [Test]
    public void A_hash_verifies_its_passcode_only()
    {
        var hash = PasscodeHasher.Hash("correct horse", FastIterations);
        Assert.That(hash, Does.Match(@"^pbkdf2-sha256\$1000\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$"));
        Assert.That(PasscodeHasher.Verify("correct horse", hash), Is.True);
        Assert.That(PasscodeHasher.Verify("correct horsE", hash), Is.False);
        Assert.That(PasscodeHasher.Verify("", hash), Is.False);
        Assert.That(hash, Does.Not.Contain("correct horse"));
    }

    [Test]
    public void Each_hash_has_its_own_salt()
    {
        Assert.That(PasscodeHasher.Hash("same", FastIterations), Is.Not.EqualTo(PasscodeHasher.Hash("same", FastIterations)));
        Assert.That(PasscodeHasher.Hash("same"), Does.StartWith($"pbkdf2-sha256${PasscodeHasher.DefaultIterations}$"));
    }

    [TestCase("pbkdf2-sha256$1000$c2FsdA==")]
    [TestCase("pbkdf2-sha256$lots$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==")]
    [TestCase("pbkdf2-sha256$10$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==")]
    [TestCase("pbkdf2-sha256$1000$not base64$aGFzaGhhc2hoYXNoaGFzaA==")]
    [TestCase("pbkdf2-sha256$1000$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==")]
    [TestCase("pbkdf2-sha512$1000$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==")]
    public void A_malformed_hash_is_refused(string hash) =>
        Assert.That(() => PasscodeHasher.Verify("x", hash), Throws.TypeOf<FormatException>());

    [Test]
    public async Task Configured_users_check_plain_and_hashed_passcodes_and_name_the_plain_ones()
    {
        using var store = new CredentialStore(new Dictionary<string, string>
        {
            ["alice"] = PasscodeHasher.Hash("alice's secret", FastIterations),
            ["guest"] = "guest",
            ["bob"] = "bob's plain one",
        }, maxConcurrentChecks: 1);

        Assert.That(store.PlainLogins, Is.EqualTo(new[] { "bob", "guest" }));
        Assert.That(await store.VerifyAsync("alice", "alice's secret", default), Is.True);
        Assert.That(await store.VerifyAsync("alice", "guest", default), Is.False);
        Assert.That(await store.VerifyAsync("guest", "guest", default), Is.True);
        Assert.That(await store.VerifyAsync("guest", "gues", default), Is.False, "a prefix is not the passcode");
        Assert.That(await store.VerifyAsync("guest", "guest ", default), Is.False);
        Assert.That(await store.VerifyAsync("mallory", "guest", default), Is.False, "unknown login");
        Assert.That(await store.VerifyAsync("bob", "bob's plain one", default), Is.True);
    }

    [Test]
    public void A_malformed_configured_hash_stops_the_start_naming_the_login_not_the_value()
    {
        const string value = "pbkdf2-sha256$1000$c2FsdA==$secretish";
        Assert.That(() => new CredentialStore(new Dictionary<string, string> { ["alice"] = value }, 1),
            Throws.InvalidOperationException.With.Message.Contains("Broker:Users:alice").And.Message.Not.Contains("secretish"));
    }
}
