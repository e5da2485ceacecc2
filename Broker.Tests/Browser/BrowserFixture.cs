using Microsoft.Playwright;
using NUnit.Framework;

namespace Broker.Tests.Browser;

/// <summary>
/// Debian's Chromium (<c>/usr/bin/chromium</c>, installed by ./test.sh) driven by Playwright's .NET driver, which
/// runs the Node.js driver shipped inside its package: no browser is ever downloaded (no <c>playwright install</c>).
/// One browser per fixture, a fresh context (storage, cookies) per test. A page's script error fails the test.
/// </summary>
[Category("Browser")]
public abstract class BrowserFixture
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;
    private IBrowser? _browser;
    private IBrowserContext? _context;
    private readonly List<string> _pageErrors = [];

    protected IPage Page { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task LaunchBrowser()
    {
        if (!File.Exists(ChromiumPath))
        {
            const string reason = $"Debian's chromium is not installed at {ChromiumPath} (apt-get install chromium; ./test.sh does)";
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                Assert.Fail($"Browser prerequisite missing under CI: {reason}");
            }

            Assert.Ignore($"Browser prerequisite missing: {reason}");
        }

        Assertions.SetDefaultExpectTimeout(15_000);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = ChromiumPath, Headless = true });
    }

    [OneTimeTearDown]
    public async Task CloseBrowser()
    {
        if (_browser is not null)
        {
            await _browser.CloseAsync();
        }

        _playwright?.Dispose();
    }

    [SetUp]
    public async Task OpenPage()
    {
        _pageErrors.Clear();
        _context = await _browser!.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        Page = await _context.NewPageAsync();
        Page.PageError += (_, error) =>
        {
            lock (_pageErrors)
            {
                _pageErrors.Add(error);
            }
        };
    }

    [TearDown]
    public async Task ClosePage()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed && Page is not null)
        {
            var path = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"{TestContext.CurrentContext.Test.Name}-failed.png");
            await Page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
            TestContext.AddTestAttachment(path);
        }

        if (_context is not null)
        {
            await _context.CloseAsync();
        }
    }

    /// <summary>Script errors the page raised so far (uncaught exceptions).</summary>
    protected IReadOnlyList<string> PageErrors
    {
        get
        {
            lock (_pageErrors)
            {
                return [.. _pageErrors];
            }
        }
    }

    protected static ILocatorAssertions Expect(ILocator locator) => Assertions.Expect(locator);

    /// <summary>A fresh directory for a server's SQLite session store.</summary>
    protected static string NewDataDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "broker-browser-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }
}
