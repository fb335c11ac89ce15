-- Headless Neovim driving `cairn lsp` through editors/nvim, as a person would: open a Python
-- file, wait for the client, go into insert mode at the end of a line, press the plugin's
-- trigger key, accept the first menu item with the plugin's accept key, leave insert mode.
-- Writes what happened to $CAIRN_TEST_OUT (JSON) and quits (exit 1 on failure or timeout).
--
-- Env: CAIRN_BIN, CAIRN_TEST_OUT, CAIRN_TEST_ROW (1-based line to complete at the end of),
-- CAIRN_TEST_TIMEOUT_MS.

local out_path = assert(os.getenv('CAIRN_TEST_OUT'), 'CAIRN_TEST_OUT')
local row = tonumber(os.getenv('CAIRN_TEST_ROW') or '6')
local timeout_ms = tonumber(os.getenv('CAIRN_TEST_TIMEOUT_MS') or '180000')
local buf = vim.api.nvim_get_current_buf()
local t0 = vim.uv.hrtime()

local result = {
  steps = {},
  notifications = {},
  menu = nil, -- the menu items when it opened
  accepted = nil, -- the LSP item of the accepted menu entry
  exec = nil, -- the workspace/executeCommand reply: { err, result, params }
  requests = {}, -- LSP requests the client sent
}

local function step(name)
  table.insert(result.steps, ('%6.0fms %s'):format((vim.uv.hrtime() - t0) / 1e6, name))
end

local done = false
local completion_replied_at ---@type integer?
local function finish(ok, err)
  if done then
    return
  end
  done = true
  result.ok = ok
  result.error = err
  result.mode = vim.api.nvim_get_mode().mode
  result.lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local f = assert(io.open(out_path, 'w'))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd(ok and 'qall!' or 'cquit! 1')
end

local function fail(err)
  step('FAIL ' .. err)
  finish(false, err)
end

local function keys(k)
  -- 'm': remap, so the plugin's insert-mode mappings apply as if typed.
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(k, true, false, true), 'm', false)
end

local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.notifications, { msg = tostring(msg), level = level })
  return notify(msg, level, opts)
end
vim.notify_once = vim.notify

vim.o.completeopt = 'menuone,noinsert'
vim.o.swapfile = false

-- Overall deadline.
vim.defer_fn(function()
  fail('timed out')
end, timeout_ms)

vim.api.nvim_create_autocmd('LspRequest', {
  callback = function(ev)
    local r = ev.data.request
    if r and r.type == 'pending' then
      table.insert(result.requests, r.method)
    elseif r and r.type == 'complete' and r.method == 'textDocument/completion' then
      completion_replied_at = completion_replied_at or vim.uv.hrtime()
    end
  end,
})

-- Remember the item the menu accepted (before the plugin's CompleteDone handler runs the
-- command, both from the same event).
vim.api.nvim_create_autocmd('CompleteDone', {
  buffer = buf,
  callback = function()
    step('CompleteDone ' .. tostring(vim.v.event.reason))
    local item = vim.tbl_get(vim.v.completed_item or {}, 'user_data', 'nvim', 'lsp', 'completion_item')
    if vim.v.event.reason == 'accept' and item then
      result.accepted = item
    end
  end,
})

local function poll(what, pred, then_do, every_ms)
  local timer = assert(vim.uv.new_timer())
  timer:start(every_ms or 50, every_ms or 50, vim.schedule_wrap(function()
    if done then
      timer:close()
      return
    end
    local ok, v = pcall(pred)
    if not ok then
      timer:close()
      fail(what .. ': ' .. tostring(v))
    elseif v then
      timer:close()
      then_do(v)
    end
  end))
end

local started = false
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if started or not client or client.name ~= 'cairn' or ev.buf ~= buf then
      return
    end
    started = true
    step('attached client ' .. client.id .. ' to buffer ' .. buf)

    -- See the reply to cairn.accept (Neovim's own handler for executeCommand ignores it).
    local plugin_handler = client.handlers['workspace/executeCommand']
    client.handlers['workspace/executeCommand'] = function(err, res, ctx)
      result.exec = { err = err, result = res == nil and vim.NIL or res, params = ctx.params }
      step('executeCommand reply ' .. (err and ('error ' .. vim.inspect(err)) or 'ok'))
      if plugin_handler then
        plugin_handler(err, res, ctx)
      end
    end

    -- Let the plugin's own LspAttach handler run first.
    vim.defer_fn(function()
      step('insert at the end of line ' .. row)
      vim.api.nvim_win_set_cursor(0, { row, 0 })
      keys('A')
      vim.defer_fn(function()
        step('trigger key')
        keys(require('cairn').config.keymaps.trigger)
        poll('menu', function()
          if vim.fn.pumvisible() == 1 then
            return true
          end
          if completion_replied_at and vim.uv.hrtime() - completion_replied_at > 3e9 then
            error('textDocument/completion was answered but no menu opened (no items?)')
          end
        end, function()
          local info = vim.fn.complete_info({ 'items', 'selected' })
          result.menu = vim.tbl_map(function(it)
            return { word = it.word, abbr = it.abbr, lsp = vim.tbl_get(it, 'user_data', 'nvim', 'lsp', 'completion_item') }
          end, info.items)
          step(('menu open: %d items, selected %d'):format(#info.items, info.selected))
          keys(require('cairn').config.keymaps.accept)
          poll('executeCommand reply', function()
            return result.exec ~= nil
          end, function()
            keys('<Esc>')
            vim.defer_fn(function()
              if not result.accepted then
                return fail('no menu item was accepted')
              end
              finish(true)
            end, 100)
          end)
        end)
      end, 100)
    end, 100)
  end,
})

require('cairn').setup({ cmd = { assert(os.getenv('CAIRN_BIN'), 'CAIRN_BIN'), 'lsp' } })
step('setup done')
