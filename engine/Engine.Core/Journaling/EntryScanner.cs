using FASTER.core;

namespace Engine.Core.Journaling;

/// <summary>
/// Walks FasterLog entries without copying them: each entry is a span into FASTER's page (or its
/// read buffer), valid until the next call.
/// </summary>
internal sealed unsafe class EntryScanner : IEntryCursor
{
    private readonly FasterLogScanIterator _iterator;
    private bool _holding;

    public EntryScanner(FasterLog log, long from, long until)
    {
        _iterator = log.Scan(from, until);
    }

    public bool TryNext(out ReadOnlySpan<byte> entry, out long address, out long nextAddress)
    {
        Release();
        if (!_iterator.UnsafeGetNext(out byte* pointer, out int length, out address, out nextAddress))
        {
            entry = default;
            return false;
        }
        _holding = true;
        entry = new ReadOnlySpan<byte>(pointer, length);
        return true;
    }

    public void Release()
    {
        if (_holding)
        {
            _iterator.UnsafeRelease();
            _holding = false;
        }
    }

    public void Dispose()
    {
        Release();
        _iterator.Dispose();
    }
}
